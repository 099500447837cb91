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


@pytest.fixture
def memory_broker(settings):
    """Send Celery messages to kombu's in-memory transport, where no worker runs them, and put
    the app back on the configured broker afterwards (its producer pool outlives settings)."""
    from nerstudio.celery import app

    def use(url):
        settings.CELERY_BROKER_URL = url
        app.conf.broker_url = url
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None

    configured = app.conf.broker_url
    use("memory://")
    yield
    use(configured)
