"""Starting a generation, in the web request: check the request, hold its credits and store its
uploads, all or nothing. generation/tasks.py then runs the rest of the pipeline in the
background."""

from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from credits import limits
from credits import services as credit_services
from generation import rules
from generation.models import Generation, GenerationImage
from lib import ratelimit
from library import services as library
from library.models import SourceImage
from library.uploads import CheckedUpload, ValidatedImage, ingest_image
from orgs.models import Membership, Organization, OrganizationGone
from providers.models import Provider

Source = CheckedUpload | ValidatedImage | SourceImage


class GenerationError(Exception):
    """A refused generation request, with a message safe to show the user."""


class TooManyGenerations(GenerationError):
    def __init__(self, retry_after: int, *, whole_org: bool):
        who = "Your organization is" if whole_org else "You are"
        super().__init__(
            f"{who} starting generations faster than allowed; try again in {retry_after} s."
        )
        self.retry_after = retry_after


def check_generate_rate(membership: Membership) -> None:
    """Count one generate request for the member and for the organization (shared cache), or
    raise TooManyGenerations with the time until the next one is allowed."""
    limits = [
        (f"member:{membership.user_id}", settings.NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE, False),
        (f"org:{membership.org_id}", settings.NERSTUDIO_GENERATE_PER_ORG_PER_MINUTE, True),
    ]
    for key, limit, whole_org in limits:
        if wait := ratelimit.hit(f"generate:{key}", limit=limit, window=60):
            raise TooManyGenerations(wait, whole_org=whole_org)


def start_generation(
    *,
    membership: Membership,
    provider: Provider,
    prompt: str,
    count: int,
    aspect_ratio: str,
    quality: str,
    products: Sequence[Source],
    references: Sequence[Source],
) -> Generation:
    """Hold the credits, add the uploads to the brand library and create the generation with its
    images (waiting), all or nothing.

    Each product or reference is an upload, header-checked by the form (CheckedUpload) and
    decoded here only after every cheaper check passed, or an image already in the library
    (SourceImage: picked on Generate, or reused). Raises credits.services.InsufficientCredits,
    credits.limits.MonthlyLimitReached or GenerationError (a rule of generation/rules.py broken,
    a file that cannot be decoded, a library image of another organization or deleted) or
    orgs.models.OrganizationGone (deleted meanwhile); nothing is charged then.
    """
    offered = provider.enabled and provider.kind == "image" and provider.is_runnable
    visible = membership.is_admin or provider.visible_to_members
    if provider.org_id != membership.org_id or not (offered and visible):
        raise GenerationError("Choose one of your organization's enabled image models.")
    broken = rules.request_errors(
        provider,
        count=count,
        aspect_ratio=aspect_ratio,
        quality=quality,
        products=len(products),
        references=len(references),
    )
    if broken:
        raise GenerationError(" ".join(message for error in broken for message in error.messages))
    needed = count * provider.credit_cost
    available = credit_services.balance_of(membership.org)
    if available < needed:
        raise credit_services.InsufficientCredits(needed=needed, available=available)
    if membership.monthly_limit is not None:  # checked again under the lock by the hold
        usage = limits.monthly_usage(membership)
        if usage.spent + needed > membership.monthly_limit:
            raise limits.MonthlyLimitReached(usage, needed)
    for source in [*products, *references]:
        if isinstance(source, SourceImage) and (
            source.org_id != membership.org_id or source.is_deleted
        ):
            raise GenerationError(f"{source.label} is no longer in your library; choose another.")
    sources = _library_images(membership, [*products, *references])
    with transaction.atomic():
        generation = Generation.objects.create(
            org_id=membership.org_id,
            user_id=membership.user_id,
            provider=provider,
            provider_name=provider.name,
            credit_cost=provider.credit_cost,
            prompt=prompt.strip(),
            aspect_ratio=aspect_ratio,
            quality=quality,
            count=count,
        )
        # add(), not set(): a new generation has nothing to compare with or remove.
        generation.products.add(*sources[: len(products)])
        generation.references.add(*sources[len(products) :])
        GenerationImage.objects.bulk_create(generation.new_images(count))
        # Raises InsufficientCredits when another request took the credits: all rolled back.
        credit_services.hold(generation=generation)
        # Under the hold's lock, which a deletion of the organization takes too.
        if Organization.is_gone(membership.org_id):
            raise OrganizationGone
    library.mark_used(sources)
    return generation


def _library_images(membership: Membership, items: Sequence[Source]) -> list[SourceImage]:
    """Each item as a library image. Uploads are decoded and re-encoded only now
    (library/uploads.py: one at a time per process) and stored outside any transaction: the hold
    locks the organization's credit account, and no storage round trip should happen while it is
    held. A request that then fails (a damaged later file, credits taken meanwhile) leaves the
    earlier images in the library, where Generate offers them again."""
    sources = []
    for item in items:
        if isinstance(item, SourceImage):
            sources.append(item)
            continue
        try:
            image = ingest_image(item)
        except ValidationError as exc:
            raise GenerationError(" ".join(exc.messages)) from None
        try:
            sources.append(
                library.store_image(org=membership.org, user=membership.user, image=image)
            )
        finally:
            if image is not item:
                image.close()  # our temporary file, not a caller's
    return sources
