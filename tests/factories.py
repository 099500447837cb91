import factory
from allauth.account.models import EmailAddress

from accounts.models import User
from orgs.models import Invitation, Membership, Organization


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
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Studio {n}")


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
from providers.models import Provider  # noqa: E402


class ImageModelFactory(factory.django.DjangoModelFactory):
    """An enabled image model on the offline local adapter; the limits and options are explicit so
    tests do not depend on the adapter's defaults."""

    class Meta:
        model = Provider

    org = factory.SubFactory(OrganizationFactory)
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
        provider = model_class(*args, **kwargs)
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
