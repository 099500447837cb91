"""Live results: the generation page, its websocket (auth, isolation, current state on connect)
and pushes from the pipeline's sync code reaching the browser. Runs on the in-memory channel
layer by default and on channels-redis when REDIS_URL is set (as in CI)."""

import asyncio
import logging
import threading
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from generation import consumers, live
from generation.models import Generation, GenerationImage
from library.models import ReferenceAnalysis
from nerstudio.asgi import application
from tests.factories import AdminMembershipFactory, MembershipFactory, stored_source_image

TIMEOUT = 5


def make_generation(membership, count=3, status=Generation.Status.GENERATING):
    provider = membership.org.providers.get(adapter="local-image")
    generation = Generation.objects.create(
        org=membership.org,
        user=membership.user,
        provider=provider,
        provider_name=provider.name,
        credit_cost=2,
        prompt="A ceramic mug on a linen tablecloth",
        aspect_ratio="4:5",
        quality="draft",
        count=count,
        status=status,
    )
    GenerationImage.objects.bulk_create(generation.new_images(count))
    return generation


@pytest.fixture
def owner_membership(org):
    return MembershipFactory(org=org, user__email="olga@acme.test", user__name="Olga Owner")


@pytest.fixture
def generation(owner_membership):
    return make_generation(owner_membership)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def connect(generation, user=None, *, session_key=None, path=None):
    """A browser's websocket to the generation's page, through the real ASGI stack: by default
    with the ticket the page gives that session (`path` overrides the page's path)."""
    headers = [(b"origin", b"http://testserver")]
    if user is not None:
        session_key = await database_sync_to_async(session_cookie)(user)
    if session_key is not None:
        headers.append((b"cookie", f"sessionid={session_key}".encode()))
    if path is None:
        path = consumers.socket_path(generation.public_id, session_key or "")
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected


async def refused(communicator, connected) -> bool:
    """Refused at the handshake, or closed by the access check after it with nothing sent."""
    if not connected:
        return True
    return await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.close",
        "code": consumers.REFUSED,
    }


def finish_image(image, status, **fields):
    GenerationImage.objects.filter(pk=image.pk).update(status=status, **fields)


def in_a_pipeline_thread(fn, *args):
    """Like the embedded worker pool: a plain thread, not one asgiref started for us."""

    def run():
        try:
            fn(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return asyncio.to_thread(thread.join)


# --- The websocket: who may connect --------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_anonymous_is_refused(generation):
    communicator, connected = await connect(generation)
    assert await refused(communicator, connected)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_member_who_does_not_own_the_generation_is_refused(generation, member):
    communicator, connected = await connect(generation, member)
    assert await refused(communicator, connected)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_another_organizations_admin_is_refused(generation, other_admin):
    communicator, connected = await connect(generation, other_admin)
    assert await refused(communicator, connected)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_owner_without_the_pages_ticket_is_refused_at_the_handshake(
    generation, owner_membership
):
    path = f"/ws/generations/{generation.public_id}/"
    for query in ("", "?ticket=", "?ticket=1abc:not-a-signature", "?other=1"):
        communicator, connected = await connect(
            generation, owner_membership.user, path=path + query
        )
        assert not connected, query
        await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_ticket_is_good_only_for_its_generation_and_its_session(
    generation, owner_membership
):
    other = await database_sync_to_async(make_generation)(owner_membership)
    key = await database_sync_to_async(session_cookie)(owner_membership.user)
    another_key = await database_sync_to_async(session_cookie)(owner_membership.user)
    own_ticket = consumers.socket_path(generation.public_id, key).split("?", 1)[1]

    attempts = [
        (key, f"/ws/generations/{other.public_id}/?{own_ticket}"),  # another generation
        (another_key, consumers.socket_path(generation.public_id, key)),  # another session
    ]
    for session_key, path in attempts:
        communicator, connected = await connect(generation, session_key=session_key, path=path)
        assert not connected, path
        await communicator.disconnect()

    communicator, connected = await connect(generation, session_key=key)  # its own
    assert connected
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_query_string_padded_with_parameters_is_refused_unparsed(
    generation, owner_membership
):
    key = await database_sync_to_async(session_cookie)(owner_membership.user)
    padded = consumers.socket_path(generation.public_id, key) + "&pad=1" * 10_000

    communicator, connected = await connect(generation, session_key=key, path=padded)
    assert not connected
    await communicator.disconnect()


def test_a_ticket_lasts_as_long_as_a_session_can(monkeypatch, settings):
    public_id, key = uuid.uuid4(), "k" * 32
    ticket = consumers.socket_path(public_id, key).split("?ticket=", 1)[1]
    issued = time.time()
    assert consumers.ticket_is_valid(public_id, key, ticket)

    monkeypatch.setattr(time, "time", lambda: issued + settings.SESSION_COOKIE_AGE - 5)
    assert consumers.ticket_is_valid(public_id, key, ticket)
    monkeypatch.setattr(time, "time", lambda: issued + settings.SESSION_COOKIE_AGE + 5)
    assert not consumers.ticket_is_valid(public_id, key, ticket)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_socket_refused_after_the_handshake_is_sent_no_later_change(
    generation, owner_membership
):
    """Between the accept and the access check the socket is in the generation's group: a push
    arriving then must not reach someone the check refuses."""
    await owner_membership.adelete()
    communicator, connected = await connect(generation, owner_membership.user)
    assert connected  # the ticket was issued while they were a member
    await sync_to_async(live.push_generation)(generation)

    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.close",
        "code": consumers.REFUSED,
    }
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_each_connect_writes_one_access_line_with_the_route_not_the_path(
    generation, owner_membership, other_admin, caplog
):
    caplog.set_level(logging.INFO, logger="nerstudio.access")  # production's level
    for user in (owner_membership.user, other_admin):
        communicator, _ = await connect(generation, user)
        await communicator.disconnect()

    lines = [r for r in caplog.records if r.name == "nerstudio.access"]
    assert [(r.method, r.route, r.status) for r in lines] == [
        ("WS", "/ws/generations/<uuid:public_id>/", 101),  # the owner
        ("WS", "/ws/generations/<uuid:public_id>/", 403),  # another organization's admin
    ]
    assert all(str(generation.public_id) not in r.getMessage() for r in lines)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_user_without_organization_is_refused(generation):
    from tests.factories import UserFactory

    loner = await database_sync_to_async(UserFactory)()
    communicator, connected = await connect(generation, loner)
    assert await refused(communicator, connected)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_owner_who_left_the_organization_is_refused(generation, owner_membership):
    await owner_membership.adelete()
    communicator, connected = await connect(generation, owner_membership.user)
    assert await refused(communicator, connected)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_password_change_signs_the_socket_out(generation, owner_membership):
    """The session's auth hash is verified on every connect: a session from before a password
    change (a stolen cookie, say) is refused, as it is by the pages."""
    user = owner_membership.user
    key = await database_sync_to_async(session_cookie)(user)
    communicator, connected = await connect(generation, session_key=key)
    assert connected
    await communicator.disconnect()

    def change_password():
        user.set_password("a completely new password")
        user.save()

    await database_sync_to_async(change_password)()
    communicator, connected = await connect(generation, session_key=key)
    assert await refused(communicator, connected)
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_signed_out_session_is_refused(generation, owner_membership):
    """Sessions are read through the cache in production (cached_db): signing out removes the
    session from the cache as well as the database."""

    def signed_out_key():
        client = Client()
        client.force_login(owner_membership.user)
        key = client.cookies["sessionid"].value
        client.logout()
        return key

    communicator, connected = await connect(
        generation, session_key=await sync_to_async(signed_out_key)()
    )
    assert await refused(communicator, connected)
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_the_sessions_user_is_read_on_a_consumer_thread_never_on_the_event_loop():
    """The user is resolved on first use (beside the access check, on the same thread hop);
    touching it on the event loop, where the session and database reads would block every
    other socket, is an error."""
    from importlib import import_module

    from django.conf import settings
    from django.core.exceptions import SynchronousOnlyOperation

    from lib.consumer_threads import SessionAuthMiddleware, off_the_sync_thread

    seen = {}

    async def inner(scope, receive, send):
        seen["user"] = scope["user"]

    session = import_module(settings.SESSION_ENGINE).SessionStore(None)
    await SessionAuthMiddleware(inner)({"type": "websocket", "session": session}, None, None)

    with pytest.raises(SynchronousOnlyOperation):
        _ = seen["user"].is_authenticated
    assert await off_the_sync_thread(lambda: seen["user"].is_authenticated)() is False


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["owner", "admin"])
async def test_the_owner_and_the_org_admin_receive_the_current_state_on_connect(
    who, generation, owner_membership, admin
):
    image = await generation.images.aget(index=1)
    await database_sync_to_async(finish_image)(
        image, GenerationImage.Status.FAILED, error="The model refused the prompt."
    )
    user = owner_membership.user if who == "owner" else admin

    communicator, connected = await connect(generation, user)
    assert connected
    html = await communicator.receive_from(timeout=TIMEOUT)
    await communicator.disconnect()

    # The status line, the facts, "Download all" and every card.
    assert html.count('hx-swap-oob="true"') == 3 + 3
    assert 'id="generation-status"' in html
    assert "Generating images: 0 of 3 done, 1 failed" in html
    async for card in generation.images.all():
        assert f'id="image-{card.public_id}"' in html
    assert "The model refused the prompt." in html
    assert "2 credits refunded" in html


@pytest.mark.django_db
def test_the_access_check_is_the_pages_rule_in_one_query(
    generation, owner_membership, admin, member, other_admin, django_assert_num_queries
):
    """The detail page's rule (Generation.objects.visible_to), for everyone who may ask."""
    from tests.factories import UserFactory

    loner = UserFactory()
    expected = {owner_membership.user: generation.pk, admin: generation.pk}
    for user in (owner_membership.user, admin, member, other_admin, loner):
        with django_assert_num_queries(1):
            assert consumers.visible_generation_id(user, generation.public_id) == expected.get(user)


@pytest.mark.django_db
def test_the_current_state_is_read_in_one_query(generation, django_assert_num_queries):
    with django_assert_num_queries(1):
        html = live.render_generation(generation.pk)
    assert html.count('hx-swap-oob="true"') == 3 + 3
    assert live.render_generation(999_999) == ""


@pytest.mark.django_db
def test_the_current_state_reads_every_field_as_the_orm_does(
    generation, owner_membership, django_assert_num_queries
):
    """The state's query is hand-written: its rows must come back as the ORM's would (JSON
    decoded, UUIDs and datetimes converted), images in order, with no query per image."""
    Generation.objects.filter(pk=generation.pk).update(notices=["The prompt writer was busy."])
    first = generation.images.get(index=0)
    finish_image(first, "done", file="generated/a.png", prompt="A mug, top-down")

    with django_assert_num_queries(1):
        state, images = live.current_state(generation.pk)
        assert [image.generation is state for image in images] == [True] * 3

    expected = Generation.objects.get(pk=generation.pk)
    for field in Generation._meta.concrete_fields:
        assert getattr(state, field.attname) == getattr(expected, field.attname), field.name
    for image, orm in zip(images, generation.images.order_by("index"), strict=True):
        for field in GenerationImage._meta.concrete_fields:
            assert getattr(image, field.attname) == getattr(orm, field.attname), field.name
    assert "The prompt writer was busy." in live.render_generation(generation.pk)


@pytest.mark.django_db
def test_who_wrote_the_prompts_and_download_all_appear_on_the_live_page(generation):
    """The page may have loaded before the prompts were written and before any image was done:
    the facts and "Download all" come with the updates, not only on a reload."""
    download = reverse("gallery:download-generation", args=[generation.public_id])
    before = live.render_generation(generation.pk)
    assert "Prompts by" not in before and download not in before

    Generation.objects.filter(pk=generation.pk).update(prompt_writer="Gemini 3 Pro (kie.ai)")
    first = generation.images.get(index=0)
    finish_image(first, "done", file="generated/a.png")

    assert "<dt>Prompts by</dt><dd>Gemini 3 Pro (kie.ai)</dd>" in live.render_generation(
        generation.pk
    )
    assert download in live.render_image(generation.pk, first.pk)


@pytest.mark.django_db
def test_the_current_state_of_a_generation_without_images(owner_membership):
    empty = make_generation(owner_membership, count=0, status=Generation.Status.QUEUED)
    state, images = live.current_state(empty.pk)
    assert (state.pk, images) == (empty.pk, [])
    assert live.render_generation(empty.pk).count('hx-swap-oob="true"') == 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_connect_does_its_database_work_off_the_sync_thread(
    generation, owner_membership, monkeypatch
):
    """Channels runs database work on one thread per process by default, shared with the sync
    views: connects queued for it behind each other and behind any slow view."""
    from lib import consumer_threads

    threads = []
    check, render = consumers.visible_generation_id, live.render_generation
    session_user = consumer_threads._session_user

    def spy(fn):
        def run(*args):
            threads.append((fn.__name__, threading.current_thread().name))
            return fn(*args)

        return run

    monkeypatch.setattr(consumers, "visible_generation_id", spy(check))
    monkeypatch.setattr(live, "render_generation", spy(render))
    monkeypatch.setattr(consumer_threads, "_session_user", spy(session_user))

    communicator, connected = await connect(generation, owner_membership.user)
    assert connected
    await communicator.receive_from(timeout=TIMEOUT)
    await communicator.disconnect()

    assert [name for name, _ in threads] == [
        "_session_user",
        "visible_generation_id",
        "render_generation",
    ]
    assert all(thread.startswith("consumer-db") for _, thread in threads)
    # One hop: the session's user, the access check and the current state.
    assert len({thread for _, thread in threads}) == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["removed", "demoted"])
async def test_a_socket_is_closed_at_the_next_update_once_its_user_may_no_longer_see_it(
    generation, owner_membership, change
):
    from orgs import services as org_services

    watcher = await database_sync_to_async(AdminMembershipFactory)(org=generation.org)
    boss = await database_sync_to_async(AdminMembershipFactory)(org=generation.org)
    communicator, connected = await connect(generation, watcher.user)
    assert connected
    await communicator.receive_from(timeout=TIMEOUT)

    if change == "removed":
        await database_sync_to_async(org_services.remove_member)(
            membership=watcher, actor=boss.user
        )
    else:
        await database_sync_to_async(org_services.change_role)(
            membership=watcher, role=watcher.Role.MEMBER, actor=boss.user
        )
    image = await generation.images.select_related("generation").afirst()
    await GenerationImage.objects.filter(pk=image.pk).aupdate(prompt="Written after the change")
    await sync_to_async(live.push_image)(image)

    assert await communicator.receive_output(TIMEOUT) == {
        "type": "websocket.close",
        "code": consumers.REFUSED,
    }


async def handshakes_for(seconds: float) -> float:
    """Other sockets' handshakes, one every 2 ms, as in a burst of reconnects; returns the time of
    the last one."""
    from lib.consumer_threads import handshakes

    end = time.monotonic() + seconds
    while (last := handshakes.seen()) < end:
        await asyncio.sleep(0.002)
    return last


@pytest.fixture
def authorized_at(monkeypatch):
    """When each connect's access check (and state render) began."""
    times = []
    authorize = consumers.authorize

    def timed(*args):
        times.append(time.monotonic())
        return authorize(*args)

    monkeypatch.setattr(consumers, "authorize", timed)
    return times


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_sockets_state_waits_until_a_burst_of_handshakes_has_passed(
    generation, owner_membership, authorized_at
):
    from lib.consumer_threads import Handshakes

    burst = asyncio.create_task(handshakes_for(0.08))  # shorter than Handshakes.LONGEST
    communicator, connected = await connect(generation, owner_membership.user)
    assert connected  # the handshake itself is not held up
    state = await communicator.receive_from(timeout=TIMEOUT)
    assert 'id="generation-status"' in state
    assert authorized_at[0] >= await burst + Handshakes.QUIET
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_sockets_state_waits_for_handshakes_no_longer_than_the_longest_wait(
    generation, owner_membership, authorized_at, monkeypatch
):
    from lib.consumer_threads import Handshakes

    monkeypatch.setattr(Handshakes, "LONGEST", 0.05)
    endless = asyncio.create_task(handshakes_for(TIMEOUT))
    try:
        communicator, connected = await connect(generation, owner_membership.user)
        assert connected
        state = await communicator.receive_from(timeout=TIMEOUT / 2)
    finally:
        endless.cancel()
    assert 'id="generation-status"' in state
    await communicator.disconnect()


needs_redis = pytest.mark.skipif(
    type(get_channel_layer()).__module__ != "channels_redis.core",
    reason="the idle wait is channels-redis's (REDIS_URL)",
)


@needs_redis
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_with_redis_an_idle_socket_stays_open_past_the_layers_blocking_pop(
    generation, owner_membership
):
    """Issue 12: with nothing to send, the consumer waits on Redis; redis-py's 5 s read timeout
    cut that wait and the server closed the socket (1011) every few seconds."""
    communicator, connected = await connect(generation, owner_membership.user)
    assert connected
    await communicator.receive_from(timeout=TIMEOUT)

    assert await communicator.receive_nothing(timeout=get_channel_layer().brpop_timeout + 1)
    await sync_to_async(live.push_generation)(generation)
    assert "generation-status" in await communicator.receive_from(timeout=TIMEOUT)
    await communicator.disconnect()


# --- Pushes from the pipeline ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_push_from_sync_code_reaches_the_connected_browser(generation, owner_membership):
    communicator, connected = await connect(generation, owner_membership.user)
    assert connected
    await communicator.receive_from(timeout=TIMEOUT)  # the initial state
    image = await generation.images.select_related("generation").aget(index=0)
    await database_sync_to_async(finish_image)(
        image, GenerationImage.Status.DONE, file="generated/a.png", thumbnail="generated/t/a.webp"
    )

    await sync_to_async(live.push_image)(image)
    html = await communicator.receive_from(timeout=TIMEOUT)
    await communicator.disconnect()

    assert html.startswith(f'<article id="image-{image.public_id}"')
    assert 'hx-swap-oob="true"' in html
    assert f'src="/images/{image.public_id}/thumbnail/"' in html
    assert f'href="/images/{image.public_id}/"' in html
    assert "Generating images: 1 of 3 done" in html  # the status line follows the cards


def analysed_reference(generation, description):
    """A reference of `generation` whose vision description is `description`."""
    reference = stored_source_image(generation.org)
    generation.references.add(reference)
    ReferenceAnalysis.objects.create(
        org=generation.org, sha256=reference.sha256, description=description
    )


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_references_descriptions_arrive_once_they_are_analysed(
    generation, owner_membership
):
    """The page opened before the vision model answered: what it saw in each reference comes
    with the update the pipeline sends after the analysis (and only with that one: a connect's
    state stays one query)."""
    communicator, connected = await connect(generation, owner_membership.user)
    assert connected
    await communicator.receive_from(timeout=TIMEOUT)  # the initial state
    await database_sync_to_async(analysed_reference)(generation, "Warm terracotta tones.")

    await sync_to_async(live.push_generation)(generation)
    plain = await communicator.receive_from(timeout=TIMEOUT)
    await sync_to_async(live.push_generation)(generation, sources=True)
    with_sources = await communicator.receive_from(timeout=TIMEOUT)
    await communicator.disconnect()

    assert "Warm terracotta tones." not in plain
    assert 'id="generation-sources"' in with_sources
    assert "Warm terracotta tones." in with_sources


@pytest.mark.django_db
def test_a_connect_soon_after_the_start_is_sent_the_references_descriptions(
    generation, django_assert_num_queries
):
    """The pipeline's update may have gone before the page's socket connected (the local vision
    model answers at once): for a young generation with described references, the connect's
    state has them too. An older page was rendered with them: its connects stay one query."""
    analysed_reference(generation, "Warm terracotta tones.")
    Generation.objects.filter(pk=generation.pk).update(reference_notes=["Warm terracotta tones."])

    assert "Warm terracotta tones." in live.render_generation(generation.pk)

    Generation.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - live.SOURCES_FRESH - timedelta(seconds=1)
    )
    with django_assert_num_queries(1):
        assert "Warm terracotta tones." not in live.render_generation(generation.pk)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_pushes_from_a_plain_worker_thread_arrive_in_order(generation, owner_membership):
    """The embedded pool's threads are not asgiref's: the in-memory layer must still be reached
    through the server's loop (STACK.md §3a), and the redis layer through its own loop."""
    communicator, connected = await connect(generation, owner_membership.user)
    assert connected
    await communicator.receive_from(timeout=TIMEOUT)

    def pipeline():
        Generation.objects.filter(pk=generation.pk).update(status=Generation.Status.FAILED)
        for image in generation.images.all():
            finish_image(image, GenerationImage.Status.FAILED, error="Provider is down.")
            live.push_image(image)
        live.push_generation(generation)

    await in_a_pipeline_thread(pipeline)
    messages = [await communicator.receive_from(timeout=TIMEOUT) for _ in range(4)]
    await communicator.disconnect()

    assert all('data-status="failed"' in m for m in messages[:3])
    assert "Failed" in messages[3] and "6 credits refunded" in messages[3]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_viewers_receive_only_the_generations_they_are_connected_to(
    generation, owner_membership, org
):
    neighbour = await database_sync_to_async(MembershipFactory)(org=org)
    theirs = await database_sync_to_async(make_generation)(neighbour, count=1)
    mine_ws, _ = await connect(generation, owner_membership.user)
    theirs_ws, _ = await connect(theirs, neighbour.user)
    await mine_ws.receive_from(timeout=TIMEOUT)
    await theirs_ws.receive_from(timeout=TIMEOUT)

    their_image = await theirs.images.select_related("generation").aget()
    await sync_to_async(live.push_image)(their_image)
    await sync_to_async(live.push_generation)(theirs)

    assert f"image-{their_image.public_id}" in await theirs_ws.receive_from(timeout=TIMEOUT)
    assert "generation-status" in await theirs_ws.receive_from(timeout=TIMEOUT)
    assert await mine_ws.receive_nothing(timeout=0.5)
    await mine_ws.disconnect()
    await theirs_ws.disconnect()


@pytest.mark.django_db(transaction=True)
def test_pushing_with_nobody_connected_is_no_failure(generation, caplog):
    live.push_generation(generation)
    live.push_image(generation.images.first())

    assert [r.getMessage() for r in caplog.records if r.name == "generation.live"] == []


class UnreachableLayer:
    """A channel layer whose transport fails the way channels-redis does with Redis down."""

    def __init__(self, error):
        self.error = error

    async def group_send(self, group, message):
        raise self.error


@pytest.mark.django_db(transaction=True)
def test_a_push_the_transport_cannot_take_is_logged_not_raised(generation, monkeypatch, caplog):
    layer = UnreachableLayer(RedisConnectionError("Error 111 connecting to redis:6379."))
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)

    live.push_generation(generation)  # the pipeline carries on
    live.push_image(generation.images.first())

    failures = [r for r in caplog.records if r.name == "generation.live"]
    assert [r.getMessage() for r in failures] == ["Live update not sent"] * 2
    assert all(isinstance(r.exc_info[1], RedisConnectionError) for r in failures)


@pytest.mark.django_db(transaction=True)
def test_a_push_failing_for_another_reason_is_a_bug_and_raised(generation, monkeypatch):
    layer = UnreachableLayer(TypeError("group_send() got an unexpected keyword argument"))
    monkeypatch.setattr(live, "get_channel_layer", lambda: layer)

    with pytest.raises(TypeError):
        live.push_generation(generation)


@pytest.mark.django_db
def test_a_push_inside_a_transaction_waits_for_the_commit(
    generation, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(live, "_send", lambda public_id, message: sent.append(message))
    with django_capture_on_commit_callbacks(execute=True):
        live.push_image(generation.images.first())
        assert sent == []
    assert [m["type"] for m in sent] == ["image.changed"]


# --- The page ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "who, expected",
    [("owner", 200), ("admin", 200), ("member", 404), ("other_admin", 404), ("anonymous", 302)],
)
def test_the_generation_page_is_for_its_owner_and_the_org_admins(
    who, expected, client, generation, owner_membership, admin, member, other_admin
):
    users = {"owner": owner_membership.user, "admin": admin, "member": member}
    users["other_admin"] = other_admin
    if who != "anonymous":
        client.force_login(users[who])
    url = reverse("generation:detail", args=[generation.public_id])

    response = client.get(url)

    assert response.status_code == expected
    if who == "anonymous":
        assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.django_db
def test_the_page_renders_the_current_state_for_a_reload(client, generation, owner_membership):
    first, second, third = generation.images.order_by("index")
    finish_image(first, "done", file="generated/a.png", thumbnail="generated/t/a.webp")
    finish_image(second, "failed", error="Content policy.")
    finish_image(third, "generating")
    client.force_login(owner_membership.user)

    html = client.get(reverse("generation:detail", args=[generation.public_id])).content.decode()

    prefix = f'data-ws-connect="/ws/generations/{generation.public_id}/?ticket='
    ticket = html.split(prefix, 1)[1].split('"', 1)[0]
    assert consumers.ticket_is_valid(generation.public_id, client.session.session_key, ticket)
    assert "hx-swap-oob" not in html  # a boosted swap of the page must not move the cards
    assert html.count('class="gen-card ') == 3
    assert f'href="/images/{first.public_id}/"' in html
    assert f'src="/images/{first.public_id}/thumbnail/"' in html
    assert "Content policy." in html and "2 credits refunded" in html
    assert "Generating…" in html  # the third
    assert "Generating images: 1 of 3 done, 1 failed" in html
    assert "Local renderer (offline)" in html and "6 credits" in html
