"""Live updates of generations to the browser over the channel layer.

The pipeline calls `push_generation` / `push_image` after it changes a row. They send a small
typed event to the generation's group; each connected consumer (generation/consumers.py) then
renders the fragments from the database and forwards them to the browser, where the htmx `ws`
extension swaps them in by id. Rendering at delivery rather than at push time means an event that
overtakes another (two pipeline threads pushing at once) can never leave a stale card on screen:
the last fragment a browser receives is always rendered after the last change.

Where the event goes:
- channels-redis (REDIS_URL set, production): from any thread or Celery worker, on one event
  loop per process kept for the purpose (`_sending_loop`), so the layer's Redis connections are
  reused. (`async_to_sync` made a loop per call, and with it a new connection: 3 ms a push.)
- InMemoryChannelLayer (embedded default): the pipeline runs on worker threads of the web process,
  and the in-memory layer may only be touched from the server's event loop (STACK.md §3a). The
  consumer remembers that loop when a browser connects; events are scheduled onto it from the
  worker threads. With nobody connected there is nobody to tell: the page renders the current
  state on load and on (re)connect anyway.

Pushing is best effort: a push the channel layer or its transport (Redis, the server's event
loop) cannot take is logged and dropped, never raised into the pipeline; the page shows the
current state on its next (re)connect anyway. Any other error is a bug and is raised.
"""

import asyncio
import functools
import logging
import os
import re
import threading
import uuid
from datetime import timedelta

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from redis.exceptions import RedisError

from generation.models import Generation, GenerationImage
from library.models import SourceImage

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None
_sending: tuple[int, asyncio.AbstractEventLoop] | None = None  # (its process, the loop)
_sending_lock = threading.Lock()
SEND_TIMEOUT = 10  # seconds; Redis's socket timeouts (settings) end a stuck send before this
# How long after its start a generation's page may predate its references' analysis (the vision
# chain's fallbacks included): a connect until then is sent the sources with their descriptions.
SOURCES_FRESH = timedelta(minutes=2)

# What sending can raise without a bug: a full channel, Redis unreachable or failing (channels-
# redis), a socket error or timeout.
TRANSPORT_ERRORS = (ChannelFull, RedisError, OSError)


def remember_server_loop() -> None:
    """Called from the consumer (on the server's event loop) so worker threads can reach the
    in-memory channel layer."""
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def group_name(public_id: uuid.UUID) -> str:
    return f"generation.{public_id.hex}"


# --- Pushing (sync code: pipeline threads, Celery workers) ---------------------------------------


def push_generation(generation: Generation, *, sources: bool = False) -> None:
    """Send the generation's current status (header + every image card) to its viewers; with
    `sources`, the images it uses too (their descriptions are new: the references were just
    analysed)."""
    message = {"type": "generation.changed", "generation_id": generation.pk}
    if sources:
        message["sources"] = True
    _push_after_commit(generation.public_id, message)


def push_image(image: GenerationImage) -> None:
    """Send one image card's current state to the generation's viewers. (Its generation is
    read for the group's name: load it with the image.)"""
    _push_after_commit(
        image.generation.public_id,
        {"type": "image.changed", "generation_id": image.generation_id, "image_id": image.pk},
    )


def _push_after_commit(public_id: uuid.UUID, message: dict) -> None:
    """Viewers read the database when the event arrives, so send only once the change is
    visible to them (immediately outside a transaction)."""

    def best_effort():
        try:
            _send(public_id, message)
        except TRANSPORT_ERRORS:
            logger.warning("Live update not sent", exc_info=True)

    transaction.on_commit(best_effort)


def _send(public_id: uuid.UUID, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    group = group_name(public_id)
    if isinstance(layer, InMemoryChannelLayer):
        loop = _server_loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return  # nobody has connected to this process
        coro = layer.group_send(group, message)
        try:
            asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop closed in between: nobody is connected any more
            coro.close()
    else:
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _sending_loop())
        try:
            future.result(timeout=SEND_TIMEOUT)  # a TimeoutError is an OSError: logged
        finally:
            future.cancel()  # no-op once done


def _sending_loop() -> asyncio.AbstractEventLoop:
    """This process's loop for sends from sync code, on a daemon thread of its own; started on
    first use, and again in a forked child (a Celery pool process), which inherits no threads."""
    global _sending
    with _sending_lock:
        if _sending is None or _sending[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="live-push", daemon=True).start()
            _sending = (os.getpid(), loop)
        return _sending[1]


# --- Rendering (the detail page and the consumer) ------------------------------------------------


def aspect_css(aspect_ratio: str) -> str:
    """ "4:5" → "4 / 5" for CSS aspect-ratio; anything else ("auto") is square."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*", aspect_ratio or "")
    return f"{match.group(1)} / {match.group(2)}" if match else "1 / 1"


def status_context(generation: Generation, images: list[GenerationImage]) -> dict:
    done = sum(1 for i in images if i.status == GenerationImage.Status.DONE)
    failed = sum(1 for i in images if i.status == GenerationImage.Status.FAILED)
    return {
        "generation": generation,
        "done_count": done,
        "failed_count": failed,
        "spent": done * generation.credit_cost,
        "refunded": failed * generation.credit_cost,
    }


def _status_fragment(state: dict) -> str:
    return render_to_string("generation/_status.html", {**state, "oob": True}).strip()


def _facts_fragment(generation: Generation) -> str:
    return render_to_string(
        "generation/_facts.html", {"generation": generation, "oob": True}
    ).strip()


def _download_fragment(state: dict) -> str:
    return render_to_string("generation/_download.html", {**state, "oob": True}).strip()


def _sources_fragment(generation: Generation) -> str:
    described = SourceImage.objects.with_descriptions().order_by("pk")
    context = {
        "products": described.filter(used_as_product=generation.pk),
        "references": described.filter(used_as_reference=generation.pk),
        "oob": True,
    }
    return render_to_string("generation/_sources.html", context).strip()


def _card_fragment(generation: Generation, image: GenerationImage) -> str:
    context = {
        "generation": generation,
        "image": image,
        "aspect": aspect_css(generation.aspect_ratio),
        "oob": True,
    }
    return render_to_string("generation/_card.html", context).strip()


@functools.cache
def _state_sql(vendor: str) -> str:
    """The generation's columns and its images' (none: NULLs), in the images' order."""
    quote = connection.ops.quote_name
    generation, image = Generation._meta, GenerationImage._meta
    columns = [f"g.{quote(f.column)}" for f in generation.concrete_fields] + [
        f"i.{quote(f.column)}" for f in image.concrete_fields
    ]
    # Quoted names of the models' tables and columns; the id is a parameter.
    return (
        f"SELECT {', '.join(columns)} FROM {quote(generation.db_table)} g"  # noqa: S608
        f" LEFT JOIN {quote(image.db_table)} i"
        f" ON i.{quote(image.get_field('generation').column)} = g.{quote(generation.pk.column)}"
        f" WHERE g.{quote(generation.pk.column)} = %s ORDER BY i.{quote('index')}"
    )


@functools.cache
def _converters(model, alias: str, vendor: str) -> list:
    """Where `model`'s concrete fields need the converters the ORM applies to raw column values
    (JSON; UUIDs and datetimes on SQLite)."""
    found = []
    for pos, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(alias)
        convert = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if convert:
            found.append((pos, convert, column))
    return found


def _load(model, alias: str, values):
    """A `model` instance from its concrete fields' raw column values."""
    values = list(values)
    for pos, convert, column in _converters(model, alias, connection.vendor):
        for converter in convert:
            values[pos] = converter(values[pos], column, connection)
    return model.from_db(connection.alias, None, values)


def current_state(generation_id: int) -> tuple[Generation | None, list[GenerationImage]]:
    """The generation and its images in one query: every websocket (re)connect reads them.

    Hand-written SQL (the columns are the models'): building and compiling the ORM's query cost
    more CPU than reading and rendering the rows, and a burst of reconnects runs this for every
    socket."""
    with connection.cursor() as cursor:
        cursor.execute(_state_sql(connection.vendor), [generation_id])
        rows = cursor.fetchall()
    if not rows:
        return None, []
    split = len(Generation._meta.concrete_fields)
    generation = _load(Generation, "g", rows[0][:split])
    cache = GenerationImage._meta.get_field("generation")
    images = []
    for row in rows:
        if row[split] is None:  # the LEFT JOIN's row for a generation without images
            continue
        image = _load(GenerationImage, "i", row[split:])
        cache.set_cached_value(image, generation)
        images.append(image)
    return generation, images


def render_generation(generation_id: int, sources: bool | None = None) -> str:
    """The status line, the facts (who wrote the prompts), "Download all" and every card as
    out-of-band fragments: the whole current state, in one query. With `sources`, the images
    the generation uses too, with what the vision model saw in each (two queries more): sent
    after the references were analysed, and by default (a connect) for a generation young
    enough that its page may have been rendered before that."""
    generation, images = current_state(generation_id)
    if generation is None:
        return ""
    state = status_context(generation, images)
    fragments = [
        _status_fragment(state),
        _facts_fragment(generation),
        _download_fragment(state),
        *(_card_fragment(generation, image) for image in images),
    ]
    if sources is None:
        young = timezone.now() - generation.created_at < SOURCES_FRESH
        sources = young and bool(generation.reference_notes)
    if sources:
        fragments.append(_sources_fragment(generation))
    return "\n".join(fragments)


def render_image(generation_id: int, image_id: int) -> str:
    """One card, plus the status line (its counts change with every card) and "Download all"
    (there once an image is done)."""
    generation, images = current_state(generation_id)
    if generation is None:
        return ""
    card = next((i for i in images if i.pk == image_id), None)
    if card is None:
        return ""
    state = status_context(generation, images)
    return "\n".join(
        [_card_fragment(generation, card), _status_fragment(state), _download_fragment(state)]
    )
