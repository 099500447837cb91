import factory
from allauth.account.models import EmailAddress
from django.utils import timezone

from accounts.models import User
from orgs.models import Invitation, Membership, Organization
from workspace.services import open_organization


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    name = factory.Faker("name")

    @factory.post_generation
    def verified(obj, create, extracted, **kwargs):
        """Users have a verified email (as after Google sign-in) unless verified=False."""
        if create and extracted is not False:
            EmailAddress.objects.create(user=obj, email=obj.email, verified=True, primary=True)


class OrganizationFactory(factory.django.DjangoModelFactory):
    """An organization as the product creates one (workspace.services.open_organization), so it
    has its credit account (balance 0) and the default providers, like every real organization.
    Only `name` can be given."""

    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Studio {n}")

    @classmethod
    def _create(cls, model_class, *, name):
        return open_organization(name=name)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.MEMBER


class AdminMembershipFactory(MembershipFactory):
    role = Membership.Role.ADMIN


class InvitationFactory(factory.django.DjangoModelFactory):
    """Build with `InvitationFactory()`; the plain token is on `invitation.token`."""

    class Meta:
        model = Invitation

    org = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = Membership.Role.MEMBER

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        expires_at = kwargs.pop("expires_at", None)
        invitation = model_class(*args, **kwargs)
        invitation.token = invitation.new_token()
        if expires_at is not None:
            invitation.expires_at = expires_at
        invitation.save()
        return invitation


# --- Generation: image models, generations and image bytes (generate page, uploads) ---------------
import io  # noqa: E402
import struct  # noqa: E402
import zlib  # noqa: E402

from PIL import Image  # noqa: E402

from generation.models import Generation  # noqa: E402
from providers.models import CatalogueEntry, Provider  # noqa: E402


class CatalogueEntryFactory(factory.django.DjangoModelFactory):
    """A platform catalogue model (the operator's) on the offline local image adapter; limits
    are explicit so tests do not depend on the adapter's defaults."""

    class Meta:
        model = CatalogueEntry

    adapter = "local-image"
    name = factory.Sequence(lambda n: f"Image model {n}")
    priority = 50
    credit_cost = 3
    aspect_ratios = ["1:1", "16:9", "9:16"]
    default_aspect_ratio = "16:9"
    quality_levels = ["draft", "standard"]
    default_quality = "draft"
    max_product_images = 4
    max_reference_images = 4

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        entry = model_class(*args, **kwargs)
        entry.full_clean()
        entry.save()
        return entry


class ImageModelFactory(factory.django.DjangoModelFactory):
    """An organization's enabled image model: a row using its own catalogue entry, which takes
    the model settings (price, ratios, limits) given here."""

    class Meta:
        model = Provider

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Image model {n}")
    priority = 50

    @classmethod
    def _create(cls, model_class, *args, org, name, priority, **settings):
        row = {
            k: settings.pop(k)
            for k in ("enabled", "is_default", "visible_to_members")
            if k in settings
        }
        entry = CatalogueEntryFactory(name=name, priority=priority, **settings)
        provider = model_class(org=org, catalogue=entry, name=name, priority=priority, **row)
        provider.full_clean(exclude=["org"])
        provider.save()
        return provider


class GenerationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Generation

    org = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    provider = None
    provider_name = "Local renderer (offline)"
    credit_cost = 1
    prompt = factory.Sequence(lambda n: f"Prompt number {n}")
    aspect_ratio = "1:1"
    count = 3
    status = Generation.Status.QUEUED
    # A finished generation has its finishing time, as the pipeline sets it.
    finished_at = factory.LazyAttribute(
        lambda g: timezone.now() if g.status in ("done", "failed") else None
    )


def image_bytes(fmt="PNG", size=(24, 16), colour=(200, 40, 60)) -> bytes:
    """A small real image in `fmt` (PNG, JPEG, WEBP, GIF…)."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """The start of a PNG whose header claims `width` by `height` pixels, with no pixel data: what
    a decompression bomb looks like before it is decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 8))


# --- Stored files: generated images and uploads with real bytes in default storage ----------------
import hashlib  # noqa: E402

from django.core.files.base import ContentFile  # noqa: E402
from django.core.files.storage import default_storage  # noqa: E402

from generation.models import GenerationImage  # noqa: E402
from library.models import SourceImage, source_image_path  # noqa: E402


def stored_source_image(org, *, colour=(46, 134, 222), uploaded_by=None) -> SourceImage:
    """An upload of `org`: a real PNG saved under its content-addressed name."""
    data = image_bytes("PNG", (40, 30), colour)
    source = SourceImage(
        org=org,
        sha256=hashlib.sha256(data).hexdigest(),
        format="PNG",
        width=40,
        height=30,
        size=len(data),
        uploaded_by=uploaded_by,
    )
    source.file.name = default_storage.save(source_image_path(source, ""), ContentFile(data))
    source.save()
    return source


def finished_image(
    membership, *, prompt="A ceramic mug on linen", index=0, products=(), references=()
) -> GenerationImage:
    """A done image of a new generation by `membership`'s user, with a real PNG and WEBP
    thumbnail in storage; `products` and `references` are SourceImages the generation used."""
    generation = GenerationFactory(
        org=membership.org,
        user=membership.user,
        prompt=prompt,
        count=index + 1,
        status=Generation.Status.DONE,
    )
    generation.products.set(products)
    generation.references.set(references)
    folder = f"generated/{membership.org.public_id}"
    png = ContentFile(image_bytes("PNG", (64, 48), (200, 40, 60)))
    file = default_storage.save(f"{folder}/{generation.public_id.hex}.png", png)
    webp = ContentFile(image_bytes("WEBP", (32, 24)))
    thumbnail = default_storage.save(f"{folder}/thumbs/{generation.public_id.hex}.webp", webp)
    return GenerationImage.objects.create(
        generation=generation,
        index=index,
        status=GenerationImage.Status.DONE,
        finished_at=timezone.now(),
        prompt=f"{prompt}, variant {index + 1}",
        file=file,
        thumbnail=thumbnail,
        width=64,
        height=48,
    )


# --- Credits: top-up requests from organization admins ------------------------------------------
from credits.models import TopUpRequest  # noqa: E402


class TopUpRequestFactory(factory.django.DjangoModelFactory):
    """A pending request, made directly (no pending limit, no email): for listing and decision
    tests. Requests that should pass the rules go through credits.request_top_up."""

    class Meta:
        model = TopUpRequest

    org = factory.SubFactory(OrganizationFactory)
    requested_by = factory.SubFactory(UserFactory)
    amount = 500
    note = factory.Sequence(lambda n: f"Purchase order {n}")


class OwnKeyProviderFactory(factory.django.DjangoModelFactory):
    """An organization's own-key provider (their key, endpoint and price), validated as the admin
    form validates it. Defaults to Nano Banana Pro on kie.ai."""

    class Meta:
        model = Provider

    org = factory.SubFactory(OrganizationFactory)
    adapter = "kie-nano-banana-pro"
    name = factory.Sequence(lambda n: f"Own-key model {n}")
    api_key = factory.Sequence(lambda n: f"org-own-key-{n:04d}")
    priority = 40

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        provider = model_class(*args, **kwargs)
        provider.full_clean(exclude=["org"])
        provider.save()
        return provider


# --- Uploads: camera-style photos carrying metadata (tests/security/test_upload_memory.py) --------


def photo_with_metadata(size=(60, 40), *, orientation=6, trailing=b"") -> bytes:
    """A JPEG as a phone writes it: pixels stored sideways with an EXIF orientation tag, a GPS
    position and a camera name, plus `trailing` bytes after the end-of-image marker. The left half
    is red and the right half blue, so the upright picture can be told from the stored one."""
    image = Image.new("RGB", size, (220, 20, 20))
    image.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x0110] = "Phone Camera 12"  # Model
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue() + trailing
