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
