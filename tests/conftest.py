import copy
import logging

import pytest
from channels.layers import channel_layers
from django.core.cache import cache

# Importing the ASGI app runs django.setup(), which reconfigures logging: once, here, rather than in
# the middle of a test that captures logs.
import nerstudio.asgi  # noqa: F401
from tests.factories import AdminMembershipFactory, MembershipFactory, OrganizationFactory


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters and cooldowns live in the cache; every test starts without them."""
    cache.clear()


@pytest.fixture(autouse=True)
def _root_log_level_restored():
    """Celery's test worker sets the root logger to ERROR; later tests reading logs need INFO."""
    level = logging.getLogger().level
    yield
    logging.getLogger().setLevel(level)


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """A channel layer per test: channels-redis binds its locks to the event loop that first used
    them, and a pipeline test pushing from worker threads must not leave one behind."""
    channel_layers.backends = {}


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


@pytest.fixture
def loopback_egress(settings):
    """The development allowance: outbound calls may reach servers on 127.0.0.1 (fakes)."""
    settings.NERSTUDIO_EGRESS_ALLOW_LOOPBACK = True


@pytest.fixture
def platform_keys(settings):
    """Set the platform's own provider keys (the operator's environment): `platform_keys(kie="k")`.
    Endpoints may be given too: `platform_keys(kie="k", kie_base_url="https://kie.example")`."""

    def give(**values):
        accounts = copy.deepcopy(settings.NERSTUDIO_PLATFORM_ACCOUNTS)
        for name, value in values.items():
            vendor, _, field = name.partition("_")
            accounts[vendor][field or "api_key"] = value
        settings.NERSTUDIO_PLATFORM_ACCOUNTS = accounts

    return give


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3-compatible HTTP endpoint: moto's server mode, on a free port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
