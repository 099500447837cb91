"""Faults on the production stack (issue 12, item 6): inject each one, then assert the outcome.

Starts the stack the Procfile describes (bench/load.py's Stack: gunicorn with uvicorn workers, the
Celery `worker-*` lines and beat) on a fresh PostgreSQL database (nerstudio_bench_faults) and a
redis-server of its own on a free port. The stack reaches PostgreSQL only through a TCP proxy in
this script, so the database can be cut for the stack alone (the machine's cluster is never
stopped). The image model is Seedream 4.5 Edit and the prompt writer Gemini 3 Pro, both kie.ai
catalogue models on the platform's key, pointed at a fake kie.ai server in this script that speaks
the real shapes (../shared/PROVIDERS.md §1): createTask, recordInfo, file upload, chat, signed
callbacks. What the fake does with a task is chosen by a marker in the generation's prompt
(`[fault:submit-500]`), which the fake prompt writer copies into every variant.

Scenarios (each posts generations over HTTP as a member, injects its fault and waits):

    kill-pipeline   worker-pipeline SIGKILLed while writing prompts, then restarted
    kill-submit     worker-submit SIGKILLed while createTask calls are in flight, then restarted
    kill-results    worker-results SIGKILLed while downloading results, then restarted
    redis-restart   the Redis server SIGKILLed mid-generation and started again, empty
    db-outage       PostgreSQL unreachable for 10 s: connections dropped and refused
    provider        createTask answering HTTP 500, hanging, garbage or the wrong shape; recordInfo
                    answering 500 or garbage; a result that is not an image; a failed task
    callbacks       callbacks lost, duplicated, late (after polling settled the image, after its
                    deadline), out of order (a failure after a success, a success after a
                    failure, a callback before createTask returned), unreadable, badly signed

After each one it asserts: every image reaches a terminal state within a bound (and the
generation too); every hold is settled exactly once per image (a capture for a done image, a
release for a failed one), held = settled and the balance = the ledger's sum; the generation page
fetched as the member shows each image's true status (done: its thumbnail, which is fetched;
failed: "Failed", the reason and the refund) and a status line matching the database; and the
outcome the scenario expects (for example: a lost callback still ends done, a provider answering
500s ends failed with a reason). A table of scenario → PASS/FAIL with figures is printed; the exit
code is 1 if any failed.

Deadlines are shortened so the whole run takes about 7 minutes: an image's deadline
(NERSTUDIO_IMAGE_DEADLINE_SECONDS) is 75 s, first polls after 2–4 s, stalled steps resumed after
15 s, a dead worker's fair-share slot lapses after 30 s, each provider call times out after 6 s.
A stack process that exits by itself is restarted, as a process manager would, and fails the
scenario. DEBUG is on for the reason bench/load.py gives (loopback egress to the fake provider).

    .venv/bin/python bench/faults.py                 # every scenario
    .venv/bin/python bench/faults.py db-outage       # one (or several) by name
"""

import asyncio
import contextlib
import html
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import load
import requests
import stack
from fakes import FakeHandler, completion

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "postgres://postgres@127.0.0.1:5432/nerstudio_bench_faults"
DEADLINE = 75  # NERSTUDIO_IMAGE_DEADLINE_SECONDS for the stack
PROVIDER_TIMEOUT = 6  # seconds, each call to the fake provider
LATENCY = 3.0  # the fake provider's time to a result
WEBHOOK_SECRET = "bench-faults-webhook-secret"
TERMINAL = ("done", "failed")


# --- A fake kie.ai --------------------------------------------------------------------------------


def png_bytes() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (512, 512), (22, 160, 133)).save(out, "PNG")
    return out.getvalue()


RESULT_PNG = png_bytes()
MARKER = re.compile(r"\[fault:([a-z0-9-]+)\]")


class FakeKie(FakeHandler):
    """kie.ai as PROVIDERS.md §1 describes it; a task's behaviour comes from the marker in its
    prompt. Class attributes are the scenario's knobs and the record of what happened."""

    base = ""
    lock = threading.Lock()
    tasks: dict[str, dict] = {}
    callbacks_pending = 0
    callbacks_sent: dict[str, int] = {}  # marker -> callbacks delivered
    llm_delay = 0.0
    submit_delay = 0.0
    download_delay = 0.0
    release = threading.Event()  # set at the end of a scenario: hanging handlers give up

    def envelope(self, data) -> None:
        self.reply(json.dumps({"code": 200, "msg": "success", "data": data}).encode())

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path.endswith("/chat/completions"):  # the prompt writer (kie chat)
            time.sleep(self.llm_delay)
            found = MARKER.search(raw.decode(errors="replace"))
            tag = f"[fault:{found[1]}] " if found else ""
            variants = [f"{tag}Variant {i}: the bottle on slate, light {i}" for i in range(8)]
            return self.reply(completion({"variants": variants}))
        if path.endswith("/file-base64-upload"):
            return self.envelope({"downloadUrl": f"{self.base}/uploads/product.png"})
        if path.endswith("/jobs/createTask"):
            return self.create_task(json.loads(raw))
        self.reply(b"{}", status=404)

    def create_task(self, body: dict) -> None:
        found = MARKER.search(body["input"]["prompt"])
        fault = found[1] if found else "ok"
        time.sleep(self.submit_delay)
        if fault == "submit-500":
            return self.reply(b"<html>Internal Server Error</html>", "text/html", 500)
        if fault == "submit-hang":
            self.release.wait(120)
            return self.close_connection_now()
        if fault == "submit-garbage":
            return self.reply(b'{"code": 200, "msg": "success", "data": {"taskId": ')
        if fault == "submit-wrong-shape":
            return self.envelope(["task", 42])
        task_id = f"task_{uuid.uuid4().hex}"
        now = time.monotonic()
        task = {"fault": fault, "created": now, "ready": now + LATENCY, "url": body["callBackUrl"]}
        if fault == "cb-before-submit":
            task["ready"] = now
        if fault == "cb-after-deadline":
            task["ready"] = now + DEADLINE + 10
        with self.lock:
            self.tasks[task_id] = task
        self.schedule_callbacks(task_id, task)
        if fault == "cb-before-submit":
            time.sleep(2)  # the callback arrives while the submission is still running
        self.envelope({"taskId": task_id})

    def close_connection_now(self):
        self.close_connection = True

    def schedule_callbacks(self, task_id: str, task: dict) -> None:
        fault, after = task["fault"], task["ready"] - task["created"]
        plan: list[tuple[float, str]] = []  # (delay, kind)
        if fault in ("ok", "result-not-image", "result-no-urls", "task-fail", "cb-before-submit"):
            plan = [(after, "normal")]
        elif fault == "cb-duplicate":
            plan = [(after, "normal")] * 5 + [(after + 1, "normal")] * 2
        elif fault == "cb-late":
            plan = [(after + 15, "normal")]  # polling settles the image first
        elif fault == "cb-after-deadline":
            plan = [(after + 1, "normal")]  # the image failed at its deadline before
        elif fault == "cb-fail-after-success":
            plan = [(after, "normal"), (after + 1, "failure")]
        elif fault == "cb-success-after-fail":
            plan = [(after, "normal"), (after + 1, "success")]
        elif fault == "cb-garbage":
            plan = [(after, "garbage")]
        elif fault == "cb-bad-signature":
            plan = [(after, "bad-signature")]
        elif fault == "cb-wrong-task":
            plan = [(after, "wrong-task")]
        # cb-lost, poll-*: no callback at all
        for delay, kind in plan:
            with self.lock:
                FakeKie.callbacks_pending += 1
            threading.Thread(
                target=self.call_back, args=(task_id, task, delay, kind), daemon=True
            ).start()

    def call_back(self, task_id: str, task: dict, delay: float, kind: str) -> None:
        from providers.adapters.kie import sign_webhook

        try:
            time.sleep(delay)
            record = self.record(task_id)
            if kind == "failure":
                record.update(state="fail", resultJson="", failCode="500", failMsg="boom")
            if kind == "success":
                url = f"{self.base}/results/{task_id}.png"
                record.update(state="success", resultJson=json.dumps({"resultUrls": [url]}))
            if kind == "wrong-task":
                record["taskId"] = "task_someone_elses"
            failed = record["state"] == "fail"
            body = {
                "code": 501 if failed else 200,
                "msg": "Playground task failed." if failed else "Playground task completed.",
                "data": record,
            }
            raw = b"{not json" if kind == "garbage" else json.dumps(body).encode()
            stamp = str(int(time.time()))
            signature = sign_webhook(record["taskId"], stamp, WEBHOOK_SECRET)
            if kind == "bad-signature":
                signature = sign_webhook(record["taskId"], stamp, "not-the-secret")
            headers = {
                "Content-Type": "application/json",
                "X-Webhook-Timestamp": stamp,
                "X-Webhook-Signature": signature,
            }
            with contextlib.suppress(requests.RequestException):
                requests.post(task["url"], data=raw, headers=headers, timeout=30)
                with self.lock:
                    self.callbacks_sent[task["fault"]] = (
                        self.callbacks_sent.get(task["fault"], 0) + 1
                    )
        finally:
            with self.lock:
                FakeKie.callbacks_pending -= 1

    def record(self, task_id: str) -> dict:
        task = self.tasks[task_id]
        ready = time.monotonic() >= task["ready"]
        data = {
            "taskId": task_id,
            "model": "seedream/4.5-edit",
            "state": "generating",
            "param": "{}",
            "resultJson": "",
            "failCode": "",
            "failMsg": "",
        }
        if ready and task["fault"] in ("task-fail", "cb-success-after-fail"):
            data.update(state="fail", failCode="422", failMsg="prohibited content")
        elif ready:
            urls = (
                [] if task["fault"] == "result-no-urls" else [f"{self.base}/results/{task_id}.png"]
            )
            data.update(state="success", resultJson=json.dumps({"resultUrls": urls}))
        return data

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path.endswith("/jobs/recordInfo"):
            task_id = parse_qs(parts.query)["taskId"][0]
            task = self.tasks.get(task_id)
            if task is None:
                return self.reply(json.dumps({"code": 404, "msg": "Task not found"}).encode())
            if task["fault"] == "poll-500":
                return self.reply(b"<html>Internal Server Error</html>", "text/html", 500)
            if task["fault"] == "poll-garbage":
                return self.reply(b'{"code": 200, "data": {"state": "succ')
            return self.envelope(self.record(task_id))
        if parts.path.startswith("/results/"):
            time.sleep(self.download_delay)
            task = self.tasks.get(parts.path.rsplit("/", 1)[1].removesuffix(".png"), {})
            if task.get("fault") == "result-not-image":
                return self.reply(b"<html>not an image</html>", "image/png")
            return self.reply(RESULT_PNG, "image/png")
        if parts.path.endswith(".png"):
            return self.reply(RESULT_PNG, "image/png")
        self.reply(b"{}", status=404)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client killed mid-request
            super().handle_error(request, client_address)


def start_fake() -> str:
    server = QuietServer(("127.0.0.1", 0), FakeKie)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeKie.base = f"http://127.0.0.1:{server.server_address[1]}"
    return FakeKie.base


# --- PostgreSQL behind a proxy that can be cut, and a Redis of our own ----------------------------


class DatabaseProxy:
    """A TCP proxy on `port` in front of PostgreSQL (127.0.0.1:5432), on its own event loop.
    cut() drops every connection through it and stops listening (new ones are refused);
    restore() listens again."""

    def __init__(self, port: int):
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.transports: set = set()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.restore()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def restore(self) -> None:
        self.run(self._listen())

    def cut(self) -> None:
        self.run(self._cut())

    async def _listen(self):
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self):
        self.server.close()
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()

    async def _handle(self, client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 5432)
        except OSError:
            client_writer.transport.abort()
            return
        pair = {client_writer.transport, upstream_writer.transport}
        self.transports |= pair
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer),
                self._pipe(upstream_reader, client_writer),
            )
        finally:
            for transport in pair:
                self.transports.discard(transport)
                transport.abort()

    @staticmethod
    async def _pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


class RedisServer:
    def __init__(self, port: int, tmp: Path):
        self.port, self.tmp = port, tmp
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(self.tmp / "redis.log", "ab")  # noqa: SIM115 (kept open by the server)
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(self.tmp)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --- The organization, the member and their requests ----------------------------------------------


def seed() -> tuple[str, str, str, str]:
    """One organization with plenty of credits, Seedream 4.5 Edit and the Gemini 3 Pro prompt
    writer (kie.ai, the platform's key: the fake) as its only providers, and one member. Returns
    the member's session key and the model's public id, aspect ratio and quality."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import User
    from credits import services as credit_services
    from orgs.models import Membership
    from providers.models import CatalogueEntry
    from workspace.services import open_organization

    names = ("Seedream 4.5 Edit", "Gemini 3 Pro (kie.ai)")
    CatalogueEntry.objects.filter(name__in=names).update(timeout_seconds=PROVIDER_TIMEOUT)
    org = open_organization(name="Bench faults")
    org.providers.update(enabled=False, is_default=False)
    org.providers.filter(name__in=names).update(enabled=True, timeout_seconds=PROVIDER_TIMEOUT)
    org.providers.filter(name="Seedream 4.5 Edit").update(is_default=True)
    model = org.providers.get(name="Seedream 4.5 Edit")
    credit_services.top_up(org=org, amount=100_000)
    user = User.objects.create_user(email="faults@bench.test", name="Fault Member")
    Membership.objects.create(org=org, user=user, role=Membership.Role.MEMBER)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    ratio = model.default_aspect_ratio or "1:1"
    return session.session_key, str(model.public_id), ratio, model.default_quality or ""


class Member:
    """The member's browser: posts the Generate form and reads generation pages."""

    def __init__(self, key: str, model: str, ratio: str, quality: str):
        self.model, self.ratio, self.quality = model, ratio, quality
        self.http = requests.Session()
        self.http.cookies.set("sessionid", key, domain="127.0.0.1", path="/")
        self.png = load.product_png()

    def generate(self, prompt: str, count: int) -> str:
        """Post a generation; returns its public id."""
        page = self.http.get(load.URL + "/generate/", timeout=60)
        page.raise_for_status()
        data = {
            "csrfmiddlewaretoken": load.CSRF.search(page.text)[1],
            "prompt": prompt,
            "model": self.model,
            "aspect_ratio": self.ratio,
            "quality": self.quality,
            "count": str(count),
        }
        files = {"products": ("product.png", self.png, "image/png")}
        response = self.http.post(
            load.URL + "/generate/", data=data, files=files, allow_redirects=False, timeout=60
        )
        assert response.status_code == 302, f"POST /generate/: HTTP {response.status_code}"
        return response.headers["Location"].rstrip("/").rsplit("/", 1)[1]

    def page(self, public_id: str) -> str:
        response = self.http.get(f"{load.URL}/generations/{public_id}/", timeout=60)
        assert response.status_code == 200, f"generation page: HTTP {response.status_code}"
        return response.text

    def fetch(self, path: str) -> int:
        return self.http.get(load.URL + path.replace("&amp;", "&"), timeout=60).status_code


# --- Waiting and checking -------------------------------------------------------------------------


def wait_for(condition, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def images_of(public_ids: list[str]):
    from django.db import close_old_connections

    from generation.models import GenerationImage

    close_old_connections()
    return GenerationImage.objects.filter(generation__public_id__in=public_ids)


def statuses(public_ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in images_of(public_ids).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def all_finished(public_ids: list[str]) -> bool:
    from generation.models import Generation

    images = images_of(public_ids)
    open_images = images.exclude(status__in=TERMINAL).exists()
    open_generations = (
        Generation.objects.filter(public_id__in=public_ids).exclude(status__in=TERMINAL).exists()
    )
    return images.exists() and not open_images and not open_generations


def credit_figures(public_ids: list[str]) -> str:
    from django.db.models import Sum

    from credits.models import LedgerEntry

    entries = LedgerEntry.objects.filter(generation__public_id__in=public_ids)
    sums = dict(entries.values_list("kind").annotate(s=Sum("amount")).values_list("kind", "s"))
    return (
        f"; credits held {sums.get('hold', 0)}, captured {sums.get('capture', 0)}, "
        f"refunded {sums.get('release', 0)}"
    )


def credit_problems(public_ids: list[str]) -> list[str]:
    """Every image of these generations settled exactly once, the right way; then the whole
    ledger (load.ledger_checks: holds, held = settled, balance = ledger sum)."""
    from credits.models import LedgerEntry

    Kind = LedgerEntry.Kind
    problems = []
    for image in images_of(public_ids).select_related("generation"):
        entries = list(
            LedgerEntry.objects.filter(image=image, kind__in=[Kind.CAPTURE, Kind.RELEASE])
        )
        kinds = sorted(e.kind for e in entries)
        wanted = {"done": [Kind.CAPTURE], "failed": [Kind.RELEASE]}.get(image.status)
        if kinds != wanted:
            problems.append(f"image {image.pk} ({image.status}) settled as {kinds or 'nothing'}")
        elif entries[0].amount != image.generation.credit_cost:
            problems.append(f"image {image.pk}: {entries[0].amount} credits settled")
    for name, passed, detail in load.ledger_checks():
        if not passed:
            problems.append(f"{name}: {detail}")
    return problems


CARD = re.compile(
    r'<article id="image-([0-9a-f-]{36})" class="[^"]*" data-status="(\w+)"(.*?)</article>', re.S
)
STATUS_LINE = re.compile(
    r'id="generation-status" class="[^"]*" data-status="(\w+)"[^>]*>(.*?)</div>', re.S
)


def page_problems(member: Member, public_ids: list[str]) -> list[str]:
    """What the member sees on each generation page against the database."""
    from generation.models import Generation

    problems = []
    for generation in Generation.objects.filter(public_id__in=public_ids):
        text = member.page(str(generation.public_id))
        line = STATUS_LINE.search(text)
        images = {str(i.public_id): i for i in generation.images.all()}
        done = sum(i.status == "done" for i in images.values())
        failed = sum(i.status == "failed" for i in images.values())
        if not line or line[1] != generation.status:
            problems.append(f"page says {line and line[1]}, generation is {generation.status}")
        elif generation.status == "done":
            said = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", line[2])).strip()
            wanted = f"Done: {done} of {generation.count} image"
            if not said.startswith(wanted) or (failed and f"{failed} failed" not in said):
                problems.append(f"status line {said!r} for {done} done, {failed} failed")
        elif "Failed:" not in line[2]:
            problems.append("a failed generation's status line does not say Failed")
        cards = {match[1]: match for match in CARD.finditer(text)}
        for public_id, image in images.items():
            card = cards.get(public_id)
            if card is None:
                problems.append(f"image {image.pk} missing from the page")
            elif card[2] != image.status:
                problems.append(f"image {image.pk} shown {card[2]}, is {image.status}")
            elif image.status == "done":
                thumbnail = re.search(r'<img src="([^"]+/thumbnail/[^"]*)"', card[3])
                if not thumbnail or member.fetch(thumbnail[1]) != 200:
                    problems.append(f"done image {image.pk}: no thumbnail shown")
            elif image.status == "failed":
                body = html.unescape(card[3])
                if "<strong>Failed</strong>" not in body or "refunded" not in body:
                    problems.append(f"failed image {image.pk}: no failure or refund shown")
                if not image.error or image.error not in body:
                    problems.append(f"failed image {image.pk}: reason {image.error!r} not shown")
    return problems


class Result:
    def __init__(self, name: str):
        self.name = name
        self.problems: list[str] = []
        self.figures = ""
        self.notes: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.problems


def settle_and_check(
    bench: "Bench",
    result: Result,
    public_ids: list[str],
    since: float,
    expect=None,
    timeout: float = DEADLINE + 60,
) -> None:
    """Wait until every image is terminal (at most `timeout` s from now), then run the checks;
    `expect(public_ids)` returns the scenario's own problems. `since`: when the fault ended.
    Meanwhile a stack process that exited is restarted, as a process manager would, and that
    is a problem of the scenario."""

    def finished():
        bench.revive(result)
        return all_finished(public_ids)

    finished = wait_for(finished, timeout, step=0.5)
    recovered = time.monotonic() - since
    wait_for(lambda: FakeKie.callbacks_pending == 0, 60)  # late callbacks delivered
    time.sleep(3)  # and whatever they queued run
    counts = statuses(public_ids)
    n = sum(counts.values())
    result.figures = (
        f"{len(public_ids)} generations, {n} images: {counts.get('done', 0)} done, "
        f"{counts.get('failed', 0)} failed"
        + "".join(f", {v} {k}" for k, v in counts.items() if k not in TERMINAL)
        + (f"; all ended {recovered:.1f} s after the fault" if finished else "")
        + credit_figures(public_ids)
    )
    if not finished:
        result.problems.append(f"not finished {timeout:.0f} s after the fault: {counts}")
        return
    result.problems += credit_problems(public_ids)
    result.problems += page_problems(bench.member, public_ids)
    if expect:
        result.problems += expect(public_ids)


def expect_all_done(public_ids: list[str]) -> list[str]:
    failed = images_of(public_ids).exclude(status="done")
    return [f"image {i.pk} {i.status}: {i.error}" for i in failed]


def reasons(public_ids: list[str]) -> list[str]:
    rows = images_of(public_ids).filter(status="failed").values_list("error", flat=True)
    counts: dict[str, int] = {}
    for error in rows:
        counts[error] = counts.get(error, 0) + 1
    return [f"{n} × {error!r}" for error, n in counts.items()]


# --- The scenarios --------------------------------------------------------------------------------


class Bench:
    """What the scenarios act on: the stack, its Redis and database proxy, the member."""

    def __init__(self, tmp, the_stack, redis_server, proxy, member):
        self.tmp, self.stack, self.redis, self.proxy, self.member = (
            tmp,
            the_stack,
            redis_server,
            proxy,
            member,
        )
        self.commands = load.procfile_commands(tmp)
        self.restarts = 0

    def kill_worker(self, name: str) -> None:
        process = self.stack.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def revive(self, result: Result) -> None:
        """Restart any stack process that exited (and say so in the result)."""
        for name, process in list(self.stack.processes.items()):
            if process.poll() is None:
                continue
            lines = self.stack.logs[name].read_text(errors="replace").splitlines()
            last = next((line for line in reversed(lines) if "Error" in line), "")
            result.problems.append(
                f"{name} exited by itself (code {process.returncode}; {last.strip()[:120]}); "
                "restarted it"
            )
            self.start_worker(name)

    def start_worker(self, name: str) -> None:
        if name not in self.commands:  # the web server: load.Stack.up() alone starts it
            raise RuntimeError(f"{name} exited")
        self.restarts += 1
        log = self.stack.logs[name]
        log.rename(log.with_suffix(f".{self.restarts}.log"))
        self.stack.start(name, self.commands[name])


def reset_fake() -> None:
    FakeKie.llm_delay = FakeKie.submit_delay = FakeKie.download_delay = 0.0
    FakeKie.release.clear()


def kill_pipeline(bench: Bench, result: Result) -> None:
    """worker-pipeline (which also runs reconcile) killed while it writes prompts."""
    from generation.models import Generation

    FakeKie.llm_delay = 5.0
    ids = [bench.member.generate(f"Kill the pipeline worker, take {n}", 3) for n in range(3)]
    writing = wait_for(
        lambda: Generation.objects.filter(public_id__in=ids, status="writing").exists(), 60
    )
    result.notes.append(f"killed while {'writing prompts' if writing else 'NOT writing'}")
    bench.kill_worker("worker-pipeline")
    time.sleep(2)
    bench.start_worker("worker-pipeline")
    FakeKie.llm_delay = 0.0
    settle_and_check(bench, result, ids, time.monotonic(), expect_all_done)


def kill_submit(bench: Bench, result: Result) -> None:
    """worker-submit killed while createTask calls are in flight (the fake answers after 3 s)."""
    FakeKie.submit_delay = 3.0
    ids = [bench.member.generate(f"Kill the submit worker, take {n}", 3) for n in range(2)]
    submitting = wait_for(lambda: images_of(ids).filter(status="submitting").exists(), 60)
    result.notes.append(
        f"killed with {images_of(ids).filter(status='submitting').count()} images submitting"
        if submitting
        else "killed with NO image submitting"
    )
    bench.kill_worker("worker-submit")
    time.sleep(2)
    FakeKie.submit_delay = 0.0
    bench.start_worker("worker-submit")
    settle_and_check(bench, result, ids, time.monotonic(), expect_all_done)


def kill_results(bench: Bench, result: Result) -> None:
    """worker-results killed while it downloads results (the fake sends them after 4 s).

    The images whose collection was only queued (their messages reserved by the dead worker)
    must end done: reconcile polls them once the callback's grace has passed. An image whose
    download was cut holds its collection lease (results.COLLECT_LEASE_SECONDS, 300 s) and is not
    polled meanwhile: with this run's short deadline it fails and is refunded."""
    FakeKie.download_delay = 4.0
    ids = [bench.member.generate(f"Kill the results worker, take {n}", 3) for n in range(2)]
    wait_for(lambda: images_of(ids).filter(collecting_until__isnull=False).exists(), 60, 0.1)
    bench.kill_worker("worker-results")
    # Counted after the kill: the worker's other processes may claim theirs up to its last moment.
    leased = set(images_of(ids).filter(collecting_until__isnull=False).values_list("pk", flat=True))
    result.notes.append(f"killed while downloading {len(leased)} of {len(ids) * 3} images")
    time.sleep(2)
    FakeKie.download_delay = 0.0
    bench.start_worker("worker-results")

    def expect(public_ids):
        images = images_of(public_ids)
        lost = images.exclude(pk__in=leased).exclude(status="done")
        for image in images.filter(pk__in=leased):
            result.notes.append(f"the image cut mid-download: {image.status}, {image.error!r}")
        return [f"image {i.pk} (not downloading) {i.status}: {i.error}" for i in lost]

    settle_and_check(bench, result, ids, time.monotonic(), expect)


def redis_restart(bench: Bench, result: Result) -> None:
    """The Redis server (broker, cache, channel layer, fair-share slots) SIGKILLed with work
    queued, in flight and callbacks due, then started again empty 3 s later."""
    FakeKie.llm_delay = 1.0
    ids = [bench.member.generate(f"Restart Redis, take {n}", 3) for n in range(3)]
    wait_for(lambda: images_of(ids).filter(status__in=["submitting", "generating"]).exists(), 60)
    result.notes.append(f"killed with images {statuses(ids)}")
    bench.redis.kill()
    time.sleep(3)
    bench.redis.start()
    FakeKie.llm_delay = 0.0
    settle_and_check(bench, result, ids, time.monotonic(), expect_all_done)


def db_outage(bench: Bench, result: Result) -> None:
    """PostgreSQL unreachable for the stack for 10 s: every connection dropped, new ones
    refused; callbacks arrive during the outage."""
    FakeKie.llm_delay = 1.0
    ids = [bench.member.generate(f"Database outage, take {n}", 3) for n in range(3)]
    wait_for(lambda: images_of(ids).filter(status__in=["submitting", "generating"]).exists(), 60)
    result.notes.append(f"cut with images {statuses(ids)}")
    bench.proxy.cut()
    time.sleep(10)
    bench.proxy.restore()
    restored = datetime.now()
    FakeKie.llm_delay = 0.0
    settle_and_check(bench, result, ids, time.monotonic(), expect_all_done)
    late = tasks_failed_on_the_database(bench, restored + timedelta(seconds=1))
    result.notes.append(
        f"tasks failed on a dead pooled connection after the database was back: {late}"
    )


def tasks_failed_on_the_database(bench: Bench, since: datetime) -> int:
    """Tasks the workers' logs say failed with OperationalError after `since` (local time)."""
    count = 0
    for path in bench.tmp.glob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if "raised unexpected: OperationalError" not in line:
                continue
            with contextlib.suppress(ValueError):
                if datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") > since:
                    count += 1
    return count


PROVIDER_FAULTS = (
    "submit-500",
    "submit-hang",
    "submit-garbage",
    "submit-wrong-shape",
    "poll-500",
    "poll-garbage",
    "result-not-image",
    "result-no-urls",
    "task-fail",
)


def provider(bench: Bench, result: Result) -> None:
    """One generation of one image per way the provider misbehaves; each must end failed with
    a reason, refunded, no later than its deadline (plus a reconcile round or two)."""
    ids = {
        fault: bench.member.generate(f"Provider [fault:{fault}]", 1) for fault in PROVIDER_FAULTS
    }

    def expect(public_ids):
        problems = []
        for fault, public_id in ids.items():
            image = images_of([public_id]).get()
            if image.status != "failed" or not image.error:
                problems.append(f"{fault}: {image.status} ({image.error!r})")
                continue
            result.notes.append(f"{fault}: failed, {image.error!r}")
            took = (image.finished_at - image.generation.created_at).total_seconds()
            if took > DEADLINE + 20:
                problems.append(f"{fault}: failed only after {took:.0f} s")
        return problems

    settle_and_check(bench, result, list(ids.values()), time.monotonic(), expect)
    FakeKie.release.set()


CALLBACK_FAULTS = {  # fault -> the image's rightful end
    "cb-lost": "done",
    "cb-duplicate": "done",
    "cb-late": "done",
    "cb-after-deadline": "failed",
    "cb-fail-after-success": "done",
    "cb-success-after-fail": "failed",
    "cb-before-submit": "done",
    "cb-garbage": "done",
    "cb-bad-signature": "done",
    "cb-wrong-task": "done",
}


def callbacks(bench: Bench, result: Result) -> None:
    """One generation of two images per way callbacks go wrong; the callbacks that come after
    the image was settled are delivered before the checks."""
    ids = {f: bench.member.generate(f"Callbacks [fault:{f}]", 2) for f in CALLBACK_FAULTS}

    def expect(public_ids):
        problems = []
        for fault, public_id in ids.items():
            images = list(images_of([public_id]))
            wrong = [i for i in images if i.status != CALLBACK_FAULTS[fault]]
            if wrong:
                problems += [f"{fault}: {i.status} ({i.error or 'no error'})" for i in wrong]
            else:
                result.notes.append(
                    f"{fault}: {CALLBACK_FAULTS[fault]}, "
                    f"{FakeKie.callbacks_sent.get(fault, 0)} callbacks delivered"
                )
        return problems

    settle_and_check(bench, result, list(ids.values()), time.monotonic(), expect)


SCENARIOS = {
    "kill-pipeline": kill_pipeline,
    "kill-submit": kill_submit,
    "kill-results": kill_results,
    "redis-restart": redis_restart,
    "db-outage": db_outage,
    "provider": provider,
    "callbacks": callbacks,
}


# --- Running it -----------------------------------------------------------------------------------


def stack_env(tmp: Path, database: str, redis_url: str, fake: str) -> dict:
    """load.py's production environment, pointed at our proxy, Redis and fake kie.ai, with the
    shortened deadlines."""
    load.DATABASE, load.REDIS = database, redis_url
    env = load.server_env(tmp)
    env.update(
        {
            # The fake provider is on http://127.0.0.1: loopback egress, a DEBUG-only allowance.
            "DEBUG": "true",
            "NERSTUDIO_EGRESS_ALLOW_LOOPBACK": "true",
            "NERSTUDIO_KIE_API_KEY": "bench-faults",
            "NERSTUDIO_KIE_BASE_URL": fake,
            "NERSTUDIO_KIE_UPLOAD_BASE_URL": fake,
            "NERSTUDIO_KIE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "NERSTUDIO_IMAGE_DEADLINE_SECONDS": str(DEADLINE),
            "NERSTUDIO_POLL_MIN_SECONDS": "2",
            "NERSTUDIO_POLL_AFTER_SECONDS": "4",
            "NERSTUDIO_STALLED_AFTER_SECONDS": "15",
            "NERSTUDIO_ORG_SLOT_LEASE_SECONDS": "30",
            "NERSTUDIO_LLM_CHAIN_DEADLINE": "15",
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        }
    )
    return env


def run(bench: Bench, chosen: list[str]) -> list[Result]:
    results = []
    for name in chosen:
        result = Result(name)
        print(f"--- {name}: {SCENARIOS[name].__doc__.split(chr(10))[0]}", flush=True)
        scenario_started = time.monotonic()
        reset_fake()
        try:
            SCENARIOS[name](bench, result)
        except Exception as exc:  # a scenario that crashes is a failed scenario
            result.problems.append(f"crashed: {exc!r}")
        finally:
            FakeKie.release.set()
        result.figures += f" [{time.monotonic() - scenario_started:.0f} s]"
        print(f"    {'PASS' if result.ok else 'FAIL'}: {result.figures}", flush=True)
        for line in result.notes:
            print(f"      {line}")
        for line in result.problems:
            print(f"      PROBLEM: {line}")
        results.append(result)
    return results


def main() -> int:
    print(stack.describe_machine(), flush=True)
    chosen = sys.argv[1:] or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="nerstudio-faults-bench-"))
    redis_server = RedisServer(stack.free_port(), tmp)
    the_stack = None
    try:
        proxy = DatabaseProxy(stack.free_port())
        fake = start_fake()
        redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
        proxied = DATABASE.replace(":5432/", f":{proxy.port}/")
        env = stack_env(tmp, proxied, redis_url, fake)
        # This process reads the database directly (its checks work while the proxy is cut).
        os.environ.update({**env, "DATABASE_URL": DATABASE})
        sys.path.insert(0, str(ROOT))
        stack.recreate_database(DATABASE)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        member = Member(*seed())
        the_stack = load.Stack(env, tmp)
        names = the_stack.up()
        print(
            f"stack: gunicorn + {load.web_workers()} uvicorn workers, {', '.join(names)}; "
            f"PostgreSQL through a proxy on :{proxy.port}, redis-server on :{redis_server.port};"
            f" fake kie.ai {fake}; image deadline {DEADLINE} s; logs in {tmp}",
            flush=True,
        )
        results = run(Bench(tmp, the_stack, redis_server, proxy, member), chosen)
    finally:
        if the_stack:
            the_stack.stop()
        redis_server.kill()
    print()
    width = max(len(r.name) for r in results)
    print(f"{'scenario':<{width}}  result  figures")
    for result in results:
        print(f"{result.name:<{width}}  {'PASS' if result.ok else 'FAIL':<6}  {result.figures}")
    failed = [r.name for r in results if not r.ok]
    print(
        f"{len(results) - len(failed)} of {len(results)} scenarios passed"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; {time.monotonic() - started:.0f} s in all; logs in {tmp}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
