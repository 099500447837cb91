import copy
import logging
import warnings

import pytest
from channels.layers import channel_layers
from django.core.cache import cache

# Importing the ASGI app runs django.setup(), which reconfigures logging: once, here, rather than in
# the middle of a test that captures logs.
import nerstudio.asgi  # noqa: F401
from lib import tasks as task_runner
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


@pytest.fixture(autouse=True)
def _embedded_tasks_end_with_their_test():
    """A task a test started on the embedded pools (a thumbnail waits for its queue to be
    quiet) finishes before the test's database goes, and none runs on into the next test."""
    yield
    if not task_runner.wait_until_idle(timeout=10):
        warnings.warn("embedded tasks were still running 10 s after the test", stacklevel=1)
    task_runner.cancel_deferred()


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

    def use(url, transport):
        settings.CELERY_BROKER_URL, settings.CELERY_BROKER_TRANSPORT = url, transport
        app.conf.broker_url, app.conf.broker_transport = url, transport  # lib.broker with Redis
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None

    configured = app.conf.broker_url, app.conf.broker_transport
    use("memory://", None)
    yield
    use(*configured)


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


@pytest.fixture
def media_root(settings, tmp_path):
    """Stored files in this test's own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def provider_pipeline(settings, media_root):
    """For pipeline tests against faked provider HTTP: files in the test's folder, the public URL
    providers call back on, and the organizations' provider registry empty before and after."""
    from providers.org_registry import clear_registry

    settings.NERSTUDIO_PUBLIC_URL = "https://studio.example.com"
    clear_registry()
    yield
    clear_registry()


@pytest.fixture
def generate_page(settings, media_root, memory_broker):
    """For tests of the Generate page: files in the test's folder, pipeline tasks sent to a broker
    where none runs, provider changes seen at once."""
    from providers.org_registry import clear_registry

    settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS = 0
    settings.NERSTUDIO_MAX_IMAGES_PER_GENERATION = 8
    clear_registry()
    yield
    clear_registry()


@pytest.fixture
def local_model(org):
    """The offline renderer every new organization starts with: enabled, default, 1 credit."""
    from providers.models import Provider

    return Provider.objects.get(org=org, adapter="local-image")


@pytest.fixture
def seedream(org):
    """An image model with tight limits: 2 product photos, 1 reference, 3 credits."""
    from tests.factories import ImageModelFactory

    return ImageModelFactory(
        org=org,
        name="Seedream 4.5 Edit",
        credit_cost=3,
        aspect_ratios=["1:1", "16:9", "9:16"],
        default_aspect_ratio="16:9",
        quality_levels=["draft", "standard"],
        default_quality="draft",
        max_product_images=2,
        max_reference_images=1,
    )
