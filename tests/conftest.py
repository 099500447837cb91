import pytest

from tests.factories import AdminMembershipFactory, MembershipFactory, OrganizationFactory


@pytest.fixture
def org():
    return OrganizationFactory(name="Acme Creative")


@pytest.fixture
def admin_membership(org):
    return AdminMembershipFactory(org=org, user__email="ada@acme.test", user__name="Ada Admin")


@pytest.fixture
def member_membership(org):
    return MembershipFactory(org=org, user__email="max@acme.test", user__name="Max Member")


@pytest.fixture
def admin(admin_membership):
    return admin_membership.user


@pytest.fixture
def member(member_membership):
    return member_membership.user


@pytest.fixture
def other_admin_membership():
    return AdminMembershipFactory(org__name="Rival Agency", user__email="rita@rival.test")


@pytest.fixture
def other_admin(other_admin_membership):
    return other_admin_membership.user


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client
