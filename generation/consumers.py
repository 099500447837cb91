"""The websocket behind a generation's page: joins the generation's group and forwards its
cards and status as HTML fragments for the htmx `ws` extension to swap in out-of-band.

Connect cost (a burst of reconnects after a deploy runs this for every open page at once): the
handshake is decided without the database, by a ticket the page carries in the socket's URL — a
signature, by the server's secret, of the generation and the session it was shown to
(`socket_path`). A socket without a valid ticket for its own generation and session cookie is
refused at the handshake; one with it is accepted at once, joins the generation's group, and then,
on one thread hop, the authoritative check runs — the session's user (still signed in, same
password), the access rule of the page, one query — and renders the current state. A socket that
fails it is closed with 4403 before anything is sent (the htmx extension does not retry that
code), and so is one whose user may no longer see the generation when an update comes (removed
from the organization, or no longer an admin): every update re-runs the access query. So
reading the session, the user and the state (about 1 ms of CPU of the ~2.5 ms a connect costs
the web process) no longer holds up the handshakes of the sockets behind it, and a
client that was never shown the page costs a signature check. In a burst of connects the hop
waits until the process's handshakes have passed (lib.consumer_threads.Handshakes), so the
sockets behind do not wait for it. That hop runs on the consumers' own threads, not the
process's single sync thread (lib/consumer_threads.py); both queries are hand-written SQL: the
ORM spent more CPU building them than the database spent answering. And Channels' own hop to the
sync thread before every message (closing stale connections) is skipped: this consumer touches
the database only through `off_the_sync_thread`, which closes its own.

Keeping idle sockets up is the server's and the channel layer's job, not this consumer's: the web
server pings every socket (uvicorn's ws_ping_interval, 20 s by default), which keeps proxies from
timing an idle socket out, and channels-redis reads with a socket timeout above its blocking pop
(settings: CHANNEL_LAYERS). A socket that drops anyway is reopened by the htmx `ws` extension
with a jittered backoff, and every (re)connect starts with the whole current state.
"""

import functools
import time
import uuid
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core import signing
from django.db import connection

from generation import live
from generation.models import Generation
from lib.consumer_threads import handshakes, off_the_sync_thread
from lib.request_id import log_socket
from orgs.models import Membership

REFUSED = 4403  # the close code of a socket that passed the handshake but not the access check


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt="generation.consumers.ticket")


def socket_path(public_id: uuid.UUID, session_key: str) -> str:
    """The generation page's websocket path, with its ticket: a timestamped signature of the
    generation and the session key. The key itself is not in it (the browser sends its cookie)."""
    value = f"{public_id}:{session_key}"
    ticket = _signer().sign(value).removeprefix(f"{value}:")  # the timestamp and signature
    return f"/ws/generations/{public_id}/?ticket={ticket}"


def ticket_is_valid(public_id: uuid.UUID, session_key: str | None, ticket: str | None) -> bool:
    """Whether `ticket` was issued by `socket_path` for this generation and session, within a
    session's lifetime. Only the handshake's gate: the access itself is checked after it."""
    if not session_key or not ticket:
        return False
    try:
        _signer().unsign(f"{public_id}:{session_key}:{ticket}", max_age=settings.SESSION_COOKIE_AGE)
    except signing.BadSignature:  # and SignatureExpired, its subclass
        return False
    return True


def _ticket(query_string: bytes) -> str | None:
    """The `ticket` parameter of a socket's query string; None if absent or if the query string
    is not the page's (more than a few parameters: not worth parsing)."""
    try:
        params = parse_qs(query_string.decode("latin-1"), max_num_fields=4)
    except ValueError:
        return None
    return params.get("ticket", [None])[0]


@functools.cache
def _visible_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    g, m = Generation._meta, Membership._meta

    def col(model, name):
        return quote(model.get_field(name).column)

    # Quoted names of the models' tables and columns; every value is a parameter.
    return (
        f"SELECT g.{col(g, 'id')} FROM {quote(g.db_table)} g"  # noqa: S608
        f" INNER JOIN {quote(m.db_table)} m ON m.{col(m, 'org')} = g.{col(g, 'org')}"
        f" WHERE g.{col(g, 'public_id')} = %s AND m.{col(m, 'user')} = %s"
        f" AND (g.{col(g, 'user')} = %s OR m.{col(m, 'role')} = %s)"
    )


def visible_generation_id(user, public_id: uuid.UUID) -> int | None:
    """The same rule as the page (`Generation.objects.visible_to(membership)`), in one query:
    admins see their organization's generations, members their own; anything else, and anyone
    without an organization, is as if it did not exist. (A user has at most one membership.)"""
    public_id = Generation._meta.get_field("public_id").get_db_prep_value(public_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            _visible_sql(connection.vendor),
            [public_id, user.pk, user.pk, Membership.Role.ADMIN.value],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def authorize(user, public_id: uuid.UUID) -> tuple[int, str] | None:
    """The generation's id and its current state if `user` (the scope's, read from the session
    here on first use) may watch it, else None: the authoritative check and the first message, on
    one consumer thread hop."""
    if user is None or not user.is_authenticated:
        return None
    generation_id = visible_generation_id(user, public_id)
    if generation_id is None:
        return None
    return generation_id, live.render_generation(generation_id)


def render_if_visible(user, public_id: uuid.UUID, render, *args) -> str | None:
    """A live update, rendered only if `user` may still watch the generation (a member removed
    or demoted since the connect may not): None if not, else the fragment ("" for nothing)."""
    if visible_generation_id(user, public_id) is None:
        return None
    return render(*args) or ""


class GenerationConsumer(AsyncWebsocketConsumer):
    route = "/ws/generations/<uuid:public_id>/"  # nerstudio/urls.py routes it; the access line
    group = None
    generation_id = None

    async def dispatch(self, message):
        """Channels' dispatch without its hop to the sync thread before every message to close
        stale database connections: this consumer uses the database only inside
        `off_the_sync_thread`, which closes them itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        started = time.perf_counter()
        arrived = handshakes.seen()
        live.remember_server_loop()
        public_id = self.scope["url_route"]["kwargs"]["public_id"]
        session_key = self.scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        if not ticket_is_valid(public_id, session_key, _ticket(self.scope["query_string"])):
            await self.close()
            log_socket(self.route, accepted=False, started=started)
            return
        await self.accept()
        await handshakes.settled(arrived)
        # Join before reading the state, so a change made meanwhile still arrives afterwards
        # (and only once authorized: the handlers below send nothing before).
        self.group = live.group_name(public_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        authorized = await off_the_sync_thread(authorize)(self.scope.get("user"), public_id)
        log_socket(self.route, accepted=authorized is not None, started=started)
        if authorized is None:
            await self.close(code=REFUSED)
            return
        self.generation_id, html = authorized
        await self.send(text_data=html)

    async def disconnect(self, code):
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        """The page sends nothing; ignore anything that arrives."""

    async def generation_changed(self, event):
        await self._send_html(live.render_generation, event.get("sources", False))

    async def image_changed(self, event):
        await self._send_html(live.render_image, event["image_id"])

    async def _send_html(self, render, *args):
        if self.generation_id is None:  # refused: closing
            return
        public_id = self.scope["url_route"]["kwargs"]["public_id"]
        html = await off_the_sync_thread(render_if_visible)(
            self.scope["user"], public_id, render, self.generation_id, *args
        )
        if html is None:  # access lost since the connect: removed, or no longer an admin
            self.generation_id = None
            await self.close(code=REFUSED)
        elif html:
            await self.send(text_data=html)
