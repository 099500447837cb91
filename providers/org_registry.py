"""The per-process registry: each organization's providers that can run, each kind in order.

It keeps each organization's resolved provider configuration in memory. A saved change is pushed:
after its transaction commits, this process forgets the organization at once and, with Redis,
every other web and worker process does too (providers.changes). The organization's
`config_version` is still re-checked as a safety net: every NERSTUDIO_PROVIDER_REFRESH_SECONDS
while pushes are heard, and at least every UNPUSHED_REFRESH_SECONDS while they are not (embedded
mode, where another process such as `manage.py shell` may change providers, or Redis unreachable).
"""

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from orgs.models import Organization
from providers import changes
from providers.adapters.types import Kind
from providers.models import CatalogueEntry, OwnKeyProvider, PlatformModel, Provider

UNPUSHED_REFRESH_SECONDS = 0.5


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


@dataclass(frozen=True)
class _Entry:
    checked_at: float
    epoch: tuple[int, int]  # the registry's and the organization's forget counts when read
    providers: OrgProviders


class OrgRegistry:
    """Resolved providers per organization, forgotten when a change is pushed.

    Each forget bumps an epoch, and a resolution read before the latest forget of its organization
    is never served: a reload racing a change cannot put the old configuration back.
    """

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._epoch = 0
        self._org_epochs: dict[int, int] = {}
        self._lock = threading.Lock()
        self._listener: changes.Listener | None = None
        self._listening_for: tuple[int, str] | None = None  # (pid, Redis URL)

    def providers_for(self, org_id: int) -> OrgProviders:
        self._ensure_listening()
        now = time.monotonic()
        epoch = (self._epoch, self._org_epochs.get(org_id, 0))
        entry = self._entries.get(org_id)
        if entry and entry.epoch != epoch:
            entry = None
        if entry and now - entry.checked_at < self._refresh_seconds():
            return entry.providers
        version = (
            Organization.objects.filter(pk=org_id).values_list("config_version", flat=True).first()
        )
        if entry and entry.providers.version == version:
            resolved = entry.providers
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
        with self._lock:
            if epoch == (self._epoch, self._org_epochs.get(org_id, 0)):
                self._entries[org_id] = _Entry(now, epoch, resolved)
        return resolved

    def forget(self, org_ids: Iterable[int]) -> None:
        with self._lock:
            for org_id in org_ids:
                self._org_epochs[org_id] = self._org_epochs.get(org_id, 0) + 1
                self._entries.pop(org_id, None)

    def clear(self) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.clear()

    def push_is_live(self) -> bool:
        return self._listener is not None and self._listener.live.is_set()

    def stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        self._listener, self._listening_for = None, None

    def _forked(self) -> None:
        """In a forked child: the parent's listener thread did not come along, and a lock some
        parent thread held at the fork would never be released."""
        self._lock = threading.Lock()
        self._listener, self._listening_for = None, None

    def _refresh_seconds(self) -> float:
        configured = settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS
        return configured if self.push_is_live() else min(configured, UNPUSHED_REFRESH_SECONDS)

    def _ensure_listening(self) -> None:
        """Start this process's listener on first use: never at import, never in a process that
        does not read providers, and again in a forked child (threads do not survive a fork)."""
        wanted = (os.getpid(), settings.REDIS_URL)
        if self._listening_for == wanted:
            return
        with self._lock:
            if self._listening_for == wanted:
                return
            previous = self._listening_for
            if self._listener is not None and previous and previous[0] == wanted[0]:
                self._listener.stop(timeout=0)  # same process, another URL (tests)
            self._listener = None
            if settings.REDIS_URL:
                self._listener = changes.Listener(
                    settings.REDIS_URL, changes.channel_name(), self.forget, self.clear
                )
                self._listener.start()
            self._listening_for = wanted


registry = OrgRegistry()
os.register_at_fork(after_in_child=registry._forked)


def providers_for(org_id: int) -> OrgProviders:
    return registry.providers_for(org_id)


def clear_registry() -> None:
    registry.clear()


def announce_change(org_ids: Iterable[int], using: str = "default") -> None:
    """Once the current transaction commits, make every process forget these organizations'
    providers: this one at once, the others through Redis. A rollback announces nothing."""
    ids = sorted(set(org_ids))
    if ids:
        transaction.on_commit(partial(_announce, ids, using), using=using, robust=True)


def _announce(org_ids: list[int], using: str) -> None:
    registry.forget(org_ids)
    if settings.REDIS_URL:
        changes.publish(settings.REDIS_URL, changes.channel_name(using), org_ids)


def _provider_changed(sender, instance: Provider, using: str, **kwargs) -> None:
    announce_change([instance.org_id], using)


def _catalogue_changed(sender, instance: CatalogueEntry, using: str, **kwargs) -> None:
    org_ids = Provider.objects.using(using).filter(catalogue=instance).values_list("org_id")
    announce_change((org_id for (org_id,) in org_ids), using)


def connect_signals() -> None:
    """Announce every saved or deleted provider and catalogue model (ProvidersConfig.ready)."""
    for model in (Provider, PlatformModel, OwnKeyProvider):
        post_save.connect(
            _provider_changed, sender=model, dispatch_uid=f"announce-{model.__name__}"
        )
        post_delete.connect(
            _provider_changed, sender=model, dispatch_uid=f"announce-delete-{model.__name__}"
        )
    post_save.connect(_catalogue_changed, sender=CatalogueEntry, dispatch_uid="announce-catalogue")
