"""The per-process registry: each organization's providers that can run, each kind in order.

It keeps each organization's resolved provider configuration in memory and re-checks the
organization's `config_version` at most every NERSTUDIO_PROVIDER_REFRESH_SECONDS, so a change
saved in the admin reaches every web and worker process within that time, without a restart.
"""

import threading
import time
from dataclasses import dataclass

from django.conf import settings

from orgs.models import Organization
from providers.adapters.types import Kind
from providers.models import Provider


@dataclass(frozen=True)
class OrgProviders:
    """An organization's enabled providers that can run, each kind in priority order."""

    version: int
    image: tuple[Provider, ...]
    llm: tuple[Provider, ...]
    vision: tuple[Provider, ...]

    def images_for(self, membership) -> tuple[Provider, ...]:
        """The image models this person may choose: admins all, members those shown to them."""
        if membership.is_admin:
            return self.image
        return tuple(p for p in self.image if p.visible_to_members)

    def default_image_for(self, membership) -> Provider | None:
        images = self.images_for(membership)
        return next((p for p in images if p.is_default), images[0] if images else None)


_registry: dict[int, tuple[float, OrgProviders]] = {}
_registry_lock = threading.Lock()


def providers_for(org_id: int) -> OrgProviders:
    now = time.monotonic()
    entry = _registry.get(org_id)
    if entry and now - entry[0] < settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS:
        return entry[1]
    version = (
        Organization.objects.filter(pk=org_id).values_list("config_version", flat=True).first()
    )
    if entry and entry[1].version == version:
        resolved = entry[1]
    else:
        # Read the version before the rows: a change committed in between makes the next check
        # reload again, never the reverse.
        rows = [
            p
            for p in Provider.objects.filter(org_id=org_id, enabled=True)
            .select_related("catalogue")
            .order_by("priority", "pk")
            if p.is_runnable  # a model without a usable key is never offered or tried
        ]
        resolved = OrgProviders(
            version=version or 0,
            image=tuple(p for p in rows if p.kind == Kind.IMAGE),
            llm=tuple(p for p in rows if p.kind == Kind.LLM),
            vision=tuple(p for p in rows if p.kind == Kind.VISION),
        )
    with _registry_lock:
        _registry[org_id] = (now, resolved)
    return resolved


def clear_registry() -> None:
    with _registry_lock:
        _registry.clear()
