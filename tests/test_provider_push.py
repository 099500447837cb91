"""Provider changes pushed to every process: through real Redis when REDIS_URL is set (as in CI),
in-process in the embedded mode, after commit only, and surviving Redis going away."""

import json
import os
import time

import pytest
import redis
from django.db import transaction

from providers import changes, org_registry
from providers.org_registry import OrgRegistry
from tests.factories import OrganizationFactory

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL (CI sets it)")
UNREACHABLE = "redis://127.0.0.1:1/0"

pytestmark = pytest.mark.django_db(transaction=True)  # changes are announced on commit


class Rollback(Exception):
    pass


def wait_for(condition, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def chain(registry, org):
    return [p.adapter for p in registry.providers_for(org.pk).llm]


@pytest.fixture
def gemini(org, platform_keys):
    """A prompt writer that can run but is switched off: enabling it puts it first in the chain."""
    platform_keys(gemini="gemini-platform")
    return org.providers.get(adapter="gemini-chat")


@pytest.fixture
def other_process(org, settings):
    """Another process's registry, hearing changes through Redis only (it shares nothing with
    this one), whose safety net is far too slow to be what a test observes."""
    settings.REDIS_URL = REDIS_URL
    settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS = 60
    registry = OrgRegistry()
    registry.providers_for(org.pk)  # first use starts its listener
    assert wait_for(registry.push_is_live), "the listener never subscribed"
    yield registry
    registry.stop_listening()


@pytest.fixture
def embedded(settings, monkeypatch):
    """One process without Redis, and no periodic re-check that could stand in for the push."""
    settings.REDIS_URL = ""
    settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS = 3600
    monkeypatch.setattr(org_registry, "UNPUSHED_REFRESH_SECONDS", 3600)
    org_registry.clear_registry()
    yield
    org_registry.clear_registry()


@needs_redis
def test_a_change_saved_in_one_process_reaches_another_well_before_the_safety_net(
    org, gemini, other_process
):
    assert chain(other_process, org) == ["local-llm"]
    gemini.enabled = True
    saved = time.monotonic()
    gemini.save()
    assert wait_for(lambda: chain(other_process, org) != ["local-llm"], timeout=1.0)
    assert time.monotonic() - saved < 0.5
    assert chain(other_process, org) == ["gemini-chat", "local-llm"]


@needs_redis
def test_a_rolled_back_change_publishes_nothing(org, settings):
    settings.REDIS_URL = REDIS_URL
    other_org = OrganizationFactory(name="Other")
    subscriber = redis.Redis.from_url(REDIS_URL, socket_timeout=5).pubsub()
    subscriber.subscribe(changes.channel_name())
    assert subscriber.get_message(timeout=2)["type"] == "subscribe"

    local = org.providers.get(adapter="local-llm")
    with pytest.raises(Rollback), transaction.atomic():
        local.priority = 7
        local.save()
        raise Rollback
    other_org.providers.get(adapter="local-llm").save()

    # Messages arrive in order: had the rolled-back change been published, it would come first.
    message = subscriber.get_message(timeout=2)
    subscriber.close()
    assert json.loads(message["data"]) == [other_org.pk]


@needs_redis
def test_the_listener_comes_back_after_redis_drops_its_connection(org, gemini, other_process):
    listener = other_process._listener
    admin = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    [client] = [c for c in admin.client_list() if c["name"] == listener.client_name]
    admin.client_kill_filter(_id=client["id"])

    assert wait_for(lambda: listener.subscriptions == 2 and other_process.push_is_live())
    assert listener.is_alive()
    gemini.enabled = True
    gemini.save()
    assert wait_for(lambda: chain(other_process, org) == ["gemini-chat", "local-llm"], 0.5)


def test_without_redis_reachable_saving_works_and_registries_fall_back_to_polling(
    org, gemini, settings
):
    settings.REDIS_URL = UNREACHABLE
    settings.NERSTUDIO_PROVIDER_REFRESH_SECONDS = 60
    registry = OrgRegistry()
    try:
        assert chain(registry, org) == ["local-llm"]
        listener = registry._listener
        gemini.enabled = True
        gemini.save()  # the publish fails, quietly
        assert wait_for(lambda: chain(registry, org) == ["gemini-chat", "local-llm"], 1.5)
        assert listener.is_alive() and not registry.push_is_live()  # retrying, with backoff
    finally:
        registry.stop_listening()
    assert not listener.is_alive()


def test_in_the_embedded_mode_a_change_is_seen_by_this_process_at_once(org, gemini, embedded):
    assert chain(org_registry, org) == ["local-llm"]
    gemini.enabled = True
    gemini.save()
    assert chain(org_registry, org) == ["gemini-chat", "local-llm"]


def test_a_catalogue_change_is_seen_by_every_organization_using_the_model(org, gemini, embedded):
    other = OrganizationFactory(name="Other")
    for row in (gemini, other.providers.get(adapter="gemini-chat")):
        row.enabled = True
        row.save()
    assert {org_registry.providers_for(o.pk).llm[0].model_id for o in (org, other)} != {"next"}
    entry = gemini.catalogue
    entry.model_id = "next"
    entry.save()
    assert {org_registry.providers_for(o.pk).llm[0].model_id for o in (org, other)} == {"next"}


def test_a_rolled_back_change_leaves_the_cached_providers_alone(
    org, embedded, django_assert_num_queries
):
    assert chain(org_registry, org) == ["local-llm"]
    local = org.providers.get(adapter="local-llm")
    with pytest.raises(Rollback), transaction.atomic():
        local.priority = 7
        local.save()
        raise Rollback
    with django_assert_num_queries(0):
        assert chain(org_registry, org) == ["local-llm"]


@needs_redis
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_listens_on_its_own_thread_and_connection(settings):
    settings.REDIS_URL = REDIS_URL
    registry = org_registry.registry
    registry._ensure_listening()
    parent_listener = registry._listener
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no database, no pytest, only the registry
        code = 1
        try:
            fresh = registry._listener is None
            registry._ensure_listening()
            if (
                fresh
                and registry._listener is not parent_listener
                and wait_for(registry.push_is_live)
            ):
                os.write(write_end, b"r")
                if wait_for(lambda: registry._org_epochs.get(-42), timeout=3):
                    code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    assert os.read(read_end, 1) == b"r", "the child never subscribed"
    changes.publish(REDIS_URL, changes.channel_name(), [-42])
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
