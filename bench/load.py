"""Load on the production stack (issue 12, item 5): N signed-in members of one organization.

Starts the stack the Procfile describes — gunicorn with its uvicorn workers on nerstudio.asgi, the
Celery workers of every `worker-*` line (pipeline, submit, results, render; their queues and
concurrency read from the Procfile) and beat — on PostgreSQL (a fresh database) and Redis (a spare
database number, flushed at start). One organization with BENCH_USERS members and plenty of
credits; the image model is the offline renderer ("local-image") with `delay_seconds` =
BENCH_PROVIDER_LATENCY (its own option, jittered ×0.6–1.4 by the adapter, max 60) to stand in for
a remote provider. Its CPU cost: with BENCH_RENDER=reuse (the default) it draws each size once per
render process and sends copies (its `reuse_renders` option) — a remote provider's CPU is not this
machine's; BENCH_RENDER=draw draws every image, at the quality asked for (BENCH_QUALITY: draft =
512 px, standard = 768 px long side). Either way the pipeline stores, thumbnails and serves real
PNG results.

Each simulated member loops for BENCH_SECONDS: opens Generate, POSTs a generation (multipart, a
small product PNG, 2–4 images, the form's CSRF token), follows the redirect to the generation page,
opens its websocket and holds it until every image is done, then browses gallery (with a few
thumbnails), history, a past generation's page and an image page with think time in between.
"Done" is read from the database by one watcher (4 times a second, one query for all open
generations) rather than parsed from the websocket's HTML fragments; the socket is held open and
its messages counted. After BENCH_SECONDS no new generation starts; the ones in flight are given
BENCH_GRACE seconds to finish.

Printed: per-endpoint p50/p95/p99 and errors; generations started/completed; POST → all images
done p50/p95; the largest Redis queue depths seen (LLEN per Celery queue, sampled every second);
where the done time goes (generation → image submitted, submitted → done); then the checks
afterwards (every hold settled once per image, balance = ledger sum, every done image's thumbnail
made) and the issue's goals (pages p95 ≤ 300 ms, 0 errors, POST → done p95 ≤ 2 × provider
latency).

DEBUG is off, as in production. The members speak plain HTTP to gunicorn with the header a
TLS-terminating proxy adds (X-Forwarded-Proto: https), so secure cookies, CSRF's origin checks and
HSTS behave as behind one. Deviations from the defaults, as docs/scaling.md advises for an
organization of 50 active members (BENCH_KEEP_RATE_LIMITS=1 keeps the defaults): the generate rate
limits are lifted, so the simulated members are never refused, and the organization's share of
provider calls in flight (NERSTUDIO_ORG_MAX_INFLIGHT) is 16 instead of 4, unless that variable
is set.

    .venv/bin/python bench/load.py                  # 10 users, 60 s, 10 s provider
    BENCH_USERS=50 BENCH_SECONDS=180 .venv/bin/python bench/load.py
    NERSTUDIO_ORG_MAX_INFLIGHT=4 BENCH_USERS=50 BENCH_SECONDS=180 .venv/bin/python bench/load.py
"""

import asyncio
import contextlib
import html
import io
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import stack
from stack import describe_machine
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
DATABASE = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nerstudio_bench_load")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")  # flushed at start
USERS = int(os.environ.get("BENCH_USERS", 10))
SECONDS = float(os.environ.get("BENCH_SECONDS", 60))
LATENCY = float(os.environ.get("BENCH_PROVIDER_LATENCY", 10))
QUALITY = os.environ.get("BENCH_QUALITY", "standard")
RENDER = os.environ.get("BENCH_RENDER", "reuse")  # or "draw"
GRACE = float(os.environ.get("BENCH_GRACE", max(60.0, 6 * LATENCY)))
THINK = (1.0, 4.0)  # seconds between page views
QUEUES = ("default", "pipeline", "submit", "results", "render", "maintenance")
PAGE_GOAL_MS = 300.0


PORT = stack.free_port()
URL = f"http://127.0.0.1:{PORT}"
HTTPS = f"https://127.0.0.1:{PORT}"  # what the app is told it is served as


def server_env(tmp: Path) -> dict:
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "bench-load-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-0123",
        "NERSTUDIO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "EMAIL_URL": "consolemail://",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NERSTUDIO_SSL_REDIRECT": "false",
        "NERSTUDIO_PUBLIC_URL": URL,
        "DATABASE_URL": DATABASE,
        "REDIS_URL": REDIS,
        "NERSTUDIO_MEDIA_ROOT": str(tmp / "media"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        "DJANGO_SETTINGS_MODULE": "nerstudio.settings.base",
        "PYTHONPATH": str(ROOT),
    }
    if os.environ.get("BENCH_KEEP_RATE_LIMITS") != "1":
        env["NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE"] = "100000"
        env["NERSTUDIO_GENERATE_PER_ORG_PER_MINUTE"] = "100000"
        env["NERSTUDIO_ORG_MAX_INFLIGHT"] = os.environ.get("NERSTUDIO_ORG_MAX_INFLIGHT", "16")
    return env


def recreate_database() -> None:
    import redis

    stack.recreate_database(DATABASE)
    redis.Redis.from_url(REDIS).flushdb()


def seed() -> tuple[list[str], str, str, str]:
    """USERS members (the first an admin) of one organization with 10⁶ credits and the offline
    renderer at LATENCY. Returns the session keys, and the model's public id, aspect ratio and
    quality for the form."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import User
    from credits import services as credit_services
    from orgs.models import Membership
    from providers.models import CatalogueEntry, Provider
    from workspace.services import open_organization

    # An organization's catalogue row always takes its options from the catalogue entry.
    options = {"delay_seconds": LATENCY, "reuse_renders": RENDER == "reuse"}
    CatalogueEntry.objects.filter(adapter="local-image").update(options=options)
    org = open_organization(name="Bench load")
    Provider.objects.filter(org=org, adapter="local-image").update(options=options)
    provider = org.providers.get(adapter="local-image")
    assert provider.enabled, "the offline renderer is not enabled (a platform key is set?)"
    credit_services.top_up(org=org, amount=1_000_000)
    keys = []
    for n in range(USERS):
        user = User.objects.create_user(email=f"load-{n}@bench.test", name=f"Member {n}")
        role = Membership.Role.ADMIN if n == 0 else Membership.Role.MEMBER
        Membership.objects.create(org=org, user=user, role=role)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
    quality = QUALITY if QUALITY in provider.quality_levels else provider.default_quality
    return keys, str(provider.public_id), provider.default_aspect_ratio or "1:1", quality


def product_png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (480, 600), (236, 232, 224))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((150, 140, 330, 500), radius=40, fill=(40, 90, 140))
    draw.ellipse((190, 90, 290, 170), fill=(200, 160, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# --- The stack ------------------------------------------------------------------------------------


def procfile() -> dict[str, list[str]]:
    """The Procfile's lines as arguments, ${VAR:-default} expanded from this environment (and
    PORT)."""
    variables = {**os.environ, "PORT": str(PORT)}

    def expand(match: re.Match) -> str:
        return variables.get(match[1], match[2])

    out = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        out[name] = re.sub(r"\$\{(\w+):-([^}]*)\}", expand, command.strip()).split()
    return out


def web_workers() -> int:
    web = procfile()["web"]
    return int(web[web.index("--workers") + 1])


def procfile_commands(tmp: Path) -> dict[str, list[str]]:
    """The Procfile's web, worker-* and beat lines (the web server on 127.0.0.1:PORT), run by
    this interpreter; beat keeps its schedule file in `tmp`."""
    out = {}
    for name, args in procfile().items():
        if not (name == "web" or name.startswith("worker") or name == "beat"):
            continue
        assert args[0] in ("celery", "gunicorn"), args
        args = [sys.executable, "-m", *(a.replace("0.0.0.0:", "127.0.0.1:") for a in args)]
        if name == "beat":
            args += ["--schedule", str(tmp / "celerybeat-schedule")]
        out[name] = args
    return out


class Stack:
    def __init__(self, env: dict, tmp: Path):
        self.env, self.tmp = env, tmp
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, args: list[str]) -> None:
        self.logs[name] = self.tmp / f"{name}.log"
        with open(self.logs[name], "wb") as log:
            self.processes[name] = subprocess.Popen(
                args,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own: stop() ends its children
            )

    def up(self) -> list[str]:
        commands = procfile_commands(self.tmp)
        for name, args in commands.items():
            self.start(name, args)
        deadline = time.monotonic() + 90  # for the web server and the workers together
        if not stack.wait_until_healthy(URL, 90, alive=self.check_alive):
            raise RuntimeError(f"the web server did not start; see {self.logs['web']}")
        from nerstudio.celery import app

        wanted = {
            args[args.index("-n") + 1].split("@")[0] for args in commands.values() if "-n" in args
        }
        while True:
            seen = {name.split("@")[0] for reply in app.control.ping(timeout=1) for name in reply}
            if wanted <= seen:
                return sorted(commands)
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready: {sorted(wanted - seen)} in {self.tmp}")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode}); see {self.logs[name]}")

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU so far of each process group of the stack (a Procfile line)."""
        return {
            name: stack.cpu_seconds(groups={process.pid})
            for name, process in self.processes.items()
        }

    def stop(self) -> None:
        """As a deploy stops the stack: SIGTERM to each Procfile process (a Celery worker then
        finishes the tasks it is running, gunicorn its requests), SIGKILL after 20 s."""
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # stragglers (pool children) too

    def tracebacks(self) -> dict[str, int]:
        return {
            name: path.read_text(errors="replace").count("Traceback")
            for name, path in self.logs.items()
        }


# --- The members ----------------------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_examples: list[str] = []
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.done_seconds: list[float] = []
        self.ws_messages = 0
        self.ws_closed_early = 0
        self.queue_max: dict[str, int] = defaultdict(int)
        self.db_connections = 0

    def error(self, endpoint: str, what: str) -> None:
        self.errors[endpoint] += 1
        if len(self.error_examples) < 10:
            self.error_examples.append(f"{endpoint}: {what}")


class Watcher:
    """Which generations are finished: one query for all open ones, 4 times a second."""

    def __init__(self):
        self.waiting: dict[str, asyncio.Future] = {}

    def wait(self, public_id: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[public_id] = future
        return future

    @staticmethod
    def finished(public_ids: list[str]) -> dict[str, str]:
        from django.db import close_old_connections

        from generation.models import Generation

        close_old_connections()
        rows = Generation.objects.filter(
            public_id__in=public_ids, status__in=["done", "failed"]
        ).values_list("public_id", "status")
        return {str(p): s for p, s in rows}

    async def run(self, executor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(0.25)
            open_ids = [p for p, f in self.waiting.items() if not f.done()]
            if not open_ids:
                continue
            for public_id, status in (
                await loop.run_in_executor(executor, self.finished, open_ids)
            ).items():
                future = self.waiting.pop(public_id)
                if not future.done():
                    future.set_result(status)


CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
IMAGE_LINK = re.compile(r'/images/([0-9a-f-]{36})/"')
THUMBNAIL = re.compile(r'/images/[0-9a-f-]{36}/thumbnail/[^"\s]*')


class Member:
    def __init__(self, n, key, form, stats, watcher, executor, stop_at, end_at):
        self.n, self.stats, self.watcher, self.executor = n, stats, watcher, executor
        self.key = key
        self.model, self.aspect_ratio, self.quality, self.png = form
        self.stop_at, self.end_at = stop_at, end_at
        self.http = requests.Session()
        self.http.cookies.set("sessionid", key, domain="127.0.0.1", path="/")
        # As behind a TLS-terminating proxy: the app sees https (secure cookies, CSRF origins).
        self.http.headers.update({"X-Forwarded-Proto": "https", "Referer": f"{HTTPS}/"})
        self.generations: list[str] = []
        self.images: list[str] = []

    async def request(self, endpoint, method, path, ok=(200,), **kwargs):
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            response = await loop.run_in_executor(
                self.executor,
                lambda: self.http.request(
                    method, URL + path, allow_redirects=False, timeout=60, **kwargs
                ),
            )
        except requests.RequestException as exc:
            self.stats.error(endpoint, repr(exc))
            return None
        self.stats.times[endpoint].append((time.perf_counter() - start) * 1000)
        for cookie in response.cookies:  # Secure cookies, which requests keeps for https URLs
            self.http.cookies.set(cookie.name, cookie.value, domain="127.0.0.1", path="/")
        if response.status_code not in ok:
            self.stats.error(endpoint, f"HTTP {response.status_code} {path}")
            return None
        return response

    async def think(self):
        await asyncio.sleep(random.uniform(*THINK))

    async def generate(self) -> None:
        page = await self.request("GET generate", "GET", "/generate/")
        if page is None:
            return
        match = CSRF.search(page.text)
        if not match:
            self.stats.error("GET generate", "no CSRF token in the form")
            return
        await self.think()
        data = {
            "csrfmiddlewaretoken": match[1],
            "prompt": f"A ceramic bottle on wet slate at dusk, take {self.n}",
            "model": self.model,
            "aspect_ratio": self.aspect_ratio,
            "quality": self.quality,
            "count": str(random.randint(2, 4)),
        }
        files = {"products": ("product.png", self.png, "image/png")}
        posted = time.perf_counter()
        response = await self.request(
            "POST generate", "POST", "/generate/", ok=(302,), data=data, files=files
        )
        if response is None:
            return
        location = response.headers["Location"]
        public_id = location.rstrip("/").rsplit("/", 1)[1]
        self.stats.started += 1
        finished = self.watcher.wait(public_id)
        page = await self.request("detail", "GET", location)
        if page is None:
            return
        path = html.unescape(page.text.split('data-ws-connect="', 1)[1].split('"', 1)[0])
        status = await self.hold_socket(path, finished)
        if status is None:
            return  # still running at the end of the grace period
        self.generations.append(location)
        if status == "done":
            self.stats.completed += 1
            self.stats.done_seconds.append(time.perf_counter() - posted)
        else:
            self.stats.failed += 1

    async def hold_socket(self, path, finished):
        start = time.perf_counter()
        try:
            ws = await connect(
                f"ws://127.0.0.1:{PORT}{path}",
                additional_headers={"Cookie": f"sessionid={self.key}", "Origin": URL},
                open_timeout=30,
            )
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            self.stats.error("ws connect", repr(exc))
            ws = None
        else:
            self.stats.times["ws connect"].append((time.perf_counter() - start) * 1000)

        async def read():
            try:
                async for _ in ws:
                    self.stats.ws_messages += 1
            except ConnectionClosed:
                pass

        reader = asyncio.create_task(read()) if ws else None
        try:
            timeout = max(1.0, self.end_at - time.monotonic())
            done, _ = await asyncio.wait(
                [finished, *([reader] if reader else [])],
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reader in done and not finished.done():  # the server closed it first
                self.stats.ws_closed_early += 1
                self.stats.error("ws held", f"closed by the server ({ws.close_code})")
                await asyncio.wait([finished], timeout=max(1.0, self.end_at - time.monotonic()))
            return finished.result() if finished.done() else None
        finally:
            if ws:
                await ws.close()
            if reader:
                reader.cancel()

    async def browse(self) -> None:
        gallery = await self.request("gallery", "GET", "/gallery/")
        if gallery is not None:
            self.images = IMAGE_LINK.findall(gallery.text)[:20] or self.images
            for thumbnail in THUMBNAIL.findall(gallery.text)[:6]:
                await self.request(
                    "thumbnail", "GET", thumbnail.replace("&amp;", "&"), ok=(200, 304)
                )
        await self.think()
        await self.request("history", "GET", "/history/")
        await self.think()
        if self.generations:
            await self.request("detail", "GET", random.choice(self.generations))
            await self.think()
        if self.images:
            await self.request("image", "GET", f"/images/{random.choice(self.images)}/")
            await self.think()

    async def run(self) -> None:
        await asyncio.sleep(random.uniform(0, 3))  # members do not all arrive in the same second
        while time.monotonic() < self.stop_at:
            await self.generate()
            if time.monotonic() >= self.stop_at:
                break
            await self.browse()


async def sample_queues(stats: Stats) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS)
    try:
        while True:
            for queue in QUEUES:
                # kombu's Redis transport: the queue's list plus one per priority step.
                keys = [queue, *(f"{queue}\x06\x16{p}" for p in (3, 6, 9))]
                depth = sum([await client.llen(k) for k in keys])
                stats.queue_max[queue] = max(stats.queue_max[queue], depth)
            # Messages workers have taken but not acknowledged (running, or waiting for their
            # countdown: the offline renderer's jobs sit here, not in the render list).
            depth = await client.hlen("unacked")
            stats.queue_max["unacked"] = max(stats.queue_max["unacked"], depth)
            await asyncio.sleep(1)
    finally:
        await client.aclose()


async def sample_connections(stats: Stats, executor) -> None:
    """The most PostgreSQL connections the stack held at once (pg_stat_activity, every second;
    this client's own one included)."""

    def count() -> int:
        from django.db import close_old_connections, connection

        close_old_connections()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]

    loop = asyncio.get_running_loop()
    while True:
        stats.db_connections = max(
            stats.db_connections, await loop.run_in_executor(executor, count)
        )
        await asyncio.sleep(1)


async def load(keys, form, stats: Stats) -> None:
    executor = ThreadPoolExecutor(max_workers=USERS + 4)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(executor)
    watcher = Watcher()
    background = [
        asyncio.create_task(watcher.run(ThreadPoolExecutor(max_workers=1))),
        asyncio.create_task(sample_queues(stats)),
        asyncio.create_task(sample_connections(stats, ThreadPoolExecutor(max_workers=1))),
    ]
    now = time.monotonic()
    stop_at, end_at = now + SECONDS, now + SECONDS + GRACE
    members = [
        Member(n, key, form, stats, watcher, executor, stop_at, end_at)
        for n, key in enumerate(keys)
    ]
    tick = asyncio.create_task(progress(stats, stop_at))
    try:
        await asyncio.gather(*(m.run() for m in members))
    finally:
        tick.cancel()
        for task in background:
            task.cancel()
        executor.shutdown(wait=False)


async def progress(stats: Stats, stop_at: float) -> None:
    start = time.monotonic()
    while True:
        await asyncio.sleep(15)
        phase = "" if time.monotonic() < stop_at else " (grace: finishing)"
        print(
            f"    {time.monotonic() - start:4.0f} s: {stats.started} started, "
            f"{stats.completed} done, {sum(stats.errors.values())} errors, load "
            f"{os.getloadavg()[0]:.2f}{phase}",
            flush=True,
        )


# --- Checks and report ----------------------------------------------------------------------------


def wait_settled(timeout: float) -> int:
    """Wait for every generation to finish; returns how many are still open."""
    from generation.models import Generation

    deadline = time.monotonic() + timeout
    while True:
        open_count = Generation.objects.exclude(status__in=["done", "failed"]).count()
        if not open_count or time.monotonic() > deadline:
            return open_count
        time.sleep(1)


def ledger_checks() -> list[tuple[str, bool, str]]:
    from django.db.models import Count, Sum

    from credits.models import CreditAccount, LedgerEntry
    from generation.models import Generation, GenerationImage

    Kind = LedgerEntry.Kind
    out = []
    holds = dict(
        LedgerEntry.objects.filter(kind=Kind.HOLD)
        .values_list("generation_id")
        .annotate(n=Count("id"))
        .values_list("generation_id", "n")
    )
    generations = Generation.objects.count()
    bad_holds = [g for g, n in holds.items() if n != 1]
    missing = generations - len(holds)
    out.append(
        (
            "one hold per generation",
            not bad_holds and not missing,
            f"{generations} generations, {len(bad_holds)} with several holds, {missing} without",
        )
    )
    settlements = dict(
        LedgerEntry.objects.filter(kind__in=[Kind.CAPTURE, Kind.RELEASE])
        .values_list("image_id")
        .annotate(n=Count("id"))
        .values_list("image_id", "n")
    )
    images = list(GenerationImage.objects.values_list("pk", "status"))
    unsettled = [pk for pk, _ in images if pk not in settlements]
    twice = [pk for pk, n in settlements.items() if n != 1]
    out.append(
        (
            "every image's hold settled once",
            not unsettled and not twice,
            f"{len(images)} images, {len(unsettled)} unsettled, "
            f"{len(twice)} settled more than once",
        )
    )
    held = LedgerEntry.objects.filter(kind=Kind.HOLD).aggregate(s=Sum("amount"))["s"] or 0
    settled = (
        LedgerEntry.objects.filter(kind__in=[Kind.CAPTURE, Kind.RELEASE]).aggregate(
            s=Sum("amount")
        )["s"]
        or 0
    )
    out.append(
        ("credits held = credits settled", held == settled, f"{held} held, {settled} settled")
    )
    for account in CreditAccount.objects.all():
        total = LedgerEntry.objects.filter(org=account.org_id).aggregate(s=Sum("delta"))["s"] or 0
        last = LedgerEntry.objects.filter(org=account.org_id).order_by("-pk").first()
        consistent = account.balance == total and (last is None or last.balance_after == total)
        out.append(
            (
                f"balance = ledger sum (org {account.org_id})",
                consistent,
                f"balance {account.balance}, ledger sum {total}, "
                f"last balance_after {last.balance_after if last else '-'}",
            )
        )
    return out


def thumbnail_check(wait: float = 30) -> tuple[str, bool, str]:
    """Every done image has its thumbnail: they are made by priority-9 tasks after the results,
    so the last ones may still be on their way (waits up to `wait` seconds for them)."""
    from generation.models import GenerationImage

    done = GenerationImage.objects.filter(status=GenerationImage.Status.DONE)
    deadline = time.monotonic() + wait
    while (missing := done.filter(thumbnail="").count()) and time.monotonic() < deadline:
        time.sleep(1)
    return (
        "every done image has its thumbnail",
        missing == 0,
        f"{done.count()} done, {missing} without after up to {wait:g} s",
    )


def done_time_breakdown() -> str:
    """Where POST → done goes, from the rows: the pipeline before the provider (the generation
    created → its image submitted) and the provider plus the way back (submitted → the image
    done: LATENCY × 0.6–1.4, then the callback, the results queue and the collection)."""
    from django.db.models import F

    from generation.models import GenerationImage

    spans = GenerationImage.objects.filter(status="done").values_list(
        F("submitted_at") - F("generation__created_at"), F("finished_at") - F("submitted_at")
    )
    before = [span.total_seconds() for span, _ in spans]
    after = [span.total_seconds() for _, span in spans]
    return (
        f"where the time goes (images done): generation → image submitted p50 "
        f"{pct(before, 50):.1f} s, p95 {pct(before, 95):.1f} s; submitted → done (the provider's "
        f"{0.6 * LATENCY:g}–{1.4 * LATENCY:g} s, the callback, the results queue, the "
        f"collection) p50 {pct(after, 50):.1f} s, p95 {pct(after, 95):.1f} s"
    )


def pct(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


PAGES = ("GET generate", "detail", "gallery", "history", "image", "thumbnail")


def report(stats: Stats, still_open: int, cpu: dict[str, float], wall: float) -> bool:
    print(
        f"{'endpoint':<14} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} errors"
    )
    for endpoint in sorted(set(stats.times) | set(stats.errors)):
        values = stats.times.get(endpoint, [])
        if values:
            figures = (statistics.median(values), pct(values, 95), pct(values, 99), max(values))
            cells = " ".join(f"{v:8.1f}" for v in figures)
        else:
            cells = " ".join(f"{'-':>8}" for _ in range(4))
        print(f"{endpoint:<14} {len(values):>6} {cells} {stats.errors.get(endpoint, 0):>6}")
    for example in stats.error_examples:
        print(f"    error: {example}")
    print(
        f"generations: {stats.started} started, {stats.completed} completed, {stats.failed} failed,"
        f" {still_open} still open after the grace period"
    )
    done = stats.done_seconds
    if done:
        print(
            f"POST → all images done: p50 {statistics.median(done):.1f} s, "
            f"p95 {pct(done, 95):.1f} s,"
            f" max {max(done):.1f} s (provider latency {LATENCY:g} s, jittered ×0.6–1.4)"
        )
    print(
        f"websocket messages received: {stats.ws_messages}; sockets closed by the server before "
        f"done: {stats.ws_closed_early}"
    )
    print(
        "max queue depth (Redis LLEN): "
        + ", ".join(f"{q} {stats.queue_max[q]}" for q in QUEUES)
        + f"; taken by workers, unacknowledged (HLEN unacked): {stats.queue_max['unacked']}"
    )
    print(f"most PostgreSQL connections at once: {stats.db_connections}")
    total = sum(cpu.values())
    print(
        f"stack CPU: {total:.0f} s over {wall:.0f} s = "
        f"{100 * total / wall / os.cpu_count():.0f} % of {os.cpu_count()} CPUs ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in cpu.items())
        + ")"
    )

    ok = True
    print("goals:")
    worst = max(
        ((pct(stats.times[e], 95), e) for e in PAGES if stats.times.get(e)), default=(0.0, "-")
    )
    met = worst[0] <= PAGE_GOAL_MS
    ok &= met
    print(
        f"  pages p95 ≤ {PAGE_GOAL_MS:g} ms (worst: {worst[1]} {worst[0]:.1f} ms): {verdict(met)}"
    )
    errors = sum(stats.errors.values()) + stats.failed + still_open
    met = errors == 0
    ok &= met
    print(
        f"  0 errors (requests, sockets, failed or unfinished generations: {errors}): "
        f"{verdict(met)}"
    )
    p95 = pct(done, 95) if done else float("inf")
    met = p95 <= 2 * LATENCY
    ok &= met
    print(f"  POST → done p95 ≤ 2 × {LATENCY:g} s ({p95:.1f} s): {verdict(met)}")
    return ok


def main() -> int:
    print(describe_machine(), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="nerstudio-load-bench-"))
    env = server_env(tmp)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    recreate_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # a deploy's build step
    keys, model, aspect_ratio, quality = seed()
    form = (model, aspect_ratio, quality, product_png())

    stack = Stack(env, tmp)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = True
    try:
        names = stack.up()
        print(
            f"stack: gunicorn + {web_workers()} uvicorn workers, "
            f"{', '.join(names)} (Procfile); PostgreSQL, Redis {REDIS}; logs in {tmp}; "
            "an organization's provider calls in flight at most "
            + env.get("NERSTUDIO_ORG_MAX_INFLIGHT", "the default")
        )
        print(
            f"{USERS} members for {SECONDS:g} s (+ up to {GRACE:g} s to finish), offline renderer "
            f"{LATENCY:g} s ({RENDER}), quality {quality}, 2–4 images per generation; "
            f"{os.cpu_count()} CPUs, "
            "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg()),
            flush=True,
        )
        stats = Stats()
        cpu, wall, mine = stack.cpu_seconds(), time.monotonic(), os.times()
        asyncio.run(load(keys, form, stats))
        cpu = {name: seconds - cpu[name] for name, seconds in stack.cpu_seconds().items()}
        wall = time.monotonic() - wall
        mine = os.times().user + os.times().system - mine.user - mine.system
        load_after = os.getloadavg()
        still_open = wait_settled(30)
        ok &= report(stats, still_open, cpu, wall)
        print(done_time_breakdown())
        print(
            f"this client's own CPU (same machine): {mine:.0f} s; PostgreSQL and Redis are not "
            "counted in the stack CPU above"
        )
        print("after the run:")
        for name, passed, detail in [*ledger_checks(), thumbnail_check()]:
            ok &= passed
            print(f"  {name}: {'OK' if passed else 'FAIL'} ({detail})")
        print("load average at the end of the load: " + " ".join(f"{v:.2f}" for v in load_after))
    finally:
        stack.stop()
    tracebacks = stack.tracebacks()
    print("tracebacks in the logs: " + ", ".join(f"{k} {v}" for k, v in tracebacks.items()))
    ok &= not any(tracebacks.values())
    print("all goals met" if ok else "some goals MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
