"""Starting a generation, in the web request: check the request, hold its credits and store its
uploads, all or nothing. generation/tasks.py then runs the rest of the pipeline in the
background."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction

from credits import services as credit_services
from generation import rules
from generation.models import Generation, GenerationImage, SourceImage, source_image_path
from generation.uploads import CheckedUpload, ValidatedImage, ingest_image
from lib import ratelimit
from orgs.models import Membership
from providers.models import Provider


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
    products: list[CheckedUpload | ValidatedImage],
    references: list[CheckedUpload | ValidatedImage],
) -> Generation:
    """Hold the credits, store the uploads and create the generation with its images (waiting),
    all or nothing.

    Uploads come header-checked from the form (CheckedUpload) and are decoded here, only after
    every cheaper check passed. Raises credits.services.InsufficientCredits or GenerationError
    (a rule of generation/rules.py broken, or a file that cannot be decoded); nothing is stored
    or charged then.
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
    available = credit_services.balance_of(membership.org)
    if available < count * provider.credit_cost:
        raise credit_services.InsufficientCredits(
            needed=count * provider.credit_cost, available=available
        )
    # Only now are the images decoded and re-encoded (generation/uploads.py): one at a time per
    # process, each into a temporary file, so a damaged last file still leaves nothing stored.
    uploads = [*products, *references]
    images: list[ValidatedImage] = []
    try:
        for upload in uploads:
            try:
                images.append(ingest_image(upload))
            except ValidationError as exc:
                raise GenerationError(" ".join(exc.messages)) from None
        # Files first, outside the transaction: the hold below locks the org's credit account, and
        # no storage round trip should happen while it is held. Names are content hashes, so a
        # request that then loses a race for the last credits leaves at most a file a later upload
        # reuses.
        names = {image.sha256: _save_blob(membership.org, image) for image in images}
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
            sources = [_source(membership, image, names[image.sha256]) for image in images]
            generation.products.set(sources[: len(products)])
            generation.references.set(sources[len(products) :])
            GenerationImage.objects.bulk_create(
                GenerationImage(generation=generation, index=i) for i in range(count)
            )
            # Raises InsufficientCredits when another request took the credits: all rolled back.
            credit_services.hold(generation=generation)
    finally:
        for upload, image in zip(uploads, images, strict=False):
            if image is not upload:
                image.close()  # our temporary file, not a caller's
    return generation


def _save_blob(org, image: ValidatedImage) -> str:
    """Store the (re-encoded) bytes once per organization under their content hash."""
    name = source_image_path(SourceImage(org=org, sha256=image.sha256, format=image.format), "")
    if not default_storage.exists(name):
        saved = default_storage.save(name, image.content())
        if saved != name:  # the same bytes arrived concurrently: keep one copy
            default_storage.delete(saved)
    return name


def _source(membership: Membership, image: ValidatedImage, name: str) -> SourceImage:
    source, _ = SourceImage.objects.get_or_create(
        org_id=membership.org_id,
        sha256=image.sha256,
        defaults={
            "file": name,
            "format": image.format,
            "width": image.width,
            "height": image.height,
            "size": image.size,
            "uploaded_by_id": membership.user_id,
        },
    )
    return source
