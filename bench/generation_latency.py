"""The app's own cost per generation (issue 12, item 3): POST of the Generate form → all N images
done, against providers that each take a fixed latency L, in both deployment modes.

A fake provider server on 127.0.0.1 speaks the real kie.ai / OpenAI shapes: vision (OpenAI chat)
and the prompt writer (kie chat) answer after L; kie's file upload answers at once; each kie image
task calls back (signed, like kie) after L, and its result is a photo-like 1024×1280 PNG of
1–2 MB (eight of them, made once). The server timestamps what it receives, for the breakdown.

Each generation is started the way a member starts one: a signed-in session opens Generate, takes
the CSRF token from the page and POSTs the form (multipart: a product photo and a reference photo,
both photo-like ~1000×1250 JPEGs, new content every run so nothing is cached). "Done" is the
generation's own `finished_at`, set after the last image was stored, paid for and pushed to the
live page; the bench reads it from the database (polled every 20 ms only to know when to look).

Two modes, each in its own process (settings are fixed once Django is set up):

  embedded    no broker: tasks on the web process's thread pools, SQLite, a threaded WSGI server
  production  the Procfile's stack (bench/load.py's Stack): gunicorn + 2 uvicorn workers on
              nerstudio.asgi, the worker-* Celery processes and beat, on Redis (db 5, flushed) and
              PostgreSQL (database nerstudio_bench_latency, recreated). DEBUG is off once the
              settings have loaded with the development allowance that lets the pipeline reach
              the fake providers on 127.0.0.1 (bench/latency_settings.py); the embedded mode
              keeps DEBUG on, as `make run` does.

Ideal time = vision L + prompts L + images L (the N images run in parallel). Overhead = measured
− ideal. Goals: overhead ≤ 50 ms per generation at N = 4, and ≤ 5 ms per extra image, i.e.
(overhead at N = 8 − overhead at N = 4) / 4. One warm-up generation per mode is not counted; the
N = 4 and N = 8 runs alternate. Breakdown (medians, from the fake server's timestamps): the POST
itself, redirect → vision request, vision answer → prompt request, prompt answer → first
createTask, first → last createTask, last callback → generation done; "other" is what is left.

    .venv/bin/python bench/generation_latency.py                  # both modes, L = 1 s, 5 runs
    BENCH_MODE=production BENCH_RUNS=10 .venv/bin/python bench/generation_latency.py
    BENCH_LATENCY=0.5 .venv/bin/python bench/generation_latency.py
"""

import base64
import hashlib
import hmac
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
import stack
from fakes import FakeHandler, completion

ROOT = Path(__file__).resolve().parent.parent
L = float(os.environ.get("BENCH_LATENCY", 1.0))
RUNS = int(os.environ.get("BENCH_RUNS", 5))
MODES = ("embedded", "production")
COUNTS = (4, 8)
GOAL_MS, GOAL_EXTRA_MS = 50.0, 5.0
DATABASE = "postgres://postgres@127.0.0.1:5432/nerstudio_bench_latency"
REDIS = "redis://127.0.0.1:6379/5"
WEBHOOK_SECRET = "bench-kie-webhook-secret"


# --- Photo-like images ----------------------------------------------------------------------------


def photo(size: tuple[int, int], seed: int):
    """A photo-like RGB image: soft colour fields and a light vignette with fine grain, so it
    compresses like a photograph (not like one flat colour)."""
    import random

    from PIL import Image, ImageChops

    rng = random.Random(seed)
    coarse = Image.frombytes("RGB", (6, 5), bytes(rng.randrange(30, 225) for _ in range(90)))
    base = coarse.resize(size, Image.BICUBIC)
    light = Image.radial_gradient("L").resize(size).point(lambda v: 255 - v // 3)
    base = ImageChops.multiply(base, Image.merge("RGB", [light] * 3))
    grain = Image.merge("RGB", [Image.effect_noise(size, 2.5) for _ in range(3)])
    return ImageChops.add(base, grain, offset=-128)


def encoded(image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def upload_photo(base, run: int) -> bytes:
    """`base` with a mark that depends on `run`: new content (a new library image, a reference
    never described) every run."""
    from PIL import ImageDraw

    image = base.copy()
    ImageDraw.Draw(image).rectangle(
        (40 + run % 50, 40, 140 + run % 50, 120), fill=(run * 37 % 256, run * 91 % 256, 90)
    )
    return encoded(image, "JPEG", quality=90)


# --- The fake providers ---------------------------------------------------------------------------


class Fake(FakeHandler):
    """kie.ai and OpenAI as far as a generation uses them; every request is timestamped."""

    base = ""
    results: list[bytes] = []
    events: list[tuple[str, float]] = []
    created: dict[str, float] = {}
    variants = 4
    lock = threading.Lock()

    @classmethod
    def note(cls, kind: str) -> None:
        with cls.lock:
            cls.events.append((kind, time.time()))

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path.endswith("/chat/completions") and "gemini" in path:  # kie chat: the LLM step
            self.note("prompt request")
            time.sleep(L)
            variants = [f"Variant {i}: the product in scene {i}" for i in range(self.variants)]
            self.note("prompt answer")
            return self.reply(completion({"variants": variants}))
        if path.endswith("/chat/completions"):  # OpenAI: the vision step
            self.note("vision request")
            time.sleep(L)
            self.note("vision answer")
            return self.reply(completion({"description": "Warm, soft light.", "palette": []}))
        if path.endswith("-upload"):  # kie's file upload (base64 or stream)
            self.note("upload")
            url = f"{self.base}/uploads/{hashlib.sha256(raw).hexdigest()[:16]}.jpg"
            body = {"success": True, "code": 200, "msg": "ok", "data": {"downloadUrl": url}}
            return self.reply(json.dumps(body).encode())
        if path.endswith("/jobs/createTask"):
            self.note("createTask")
            body = json.loads(raw)
            with self.lock:
                task_id = f"task_{len(self.created)}_{time.monotonic_ns()}"
                self.created[task_id] = time.monotonic()
            threading.Thread(target=self._call_back, args=(task_id, body["callBackUrl"])).start()
            reply = {"code": 200, "msg": "success", "data": {"taskId": task_id}}
            return self.reply(json.dumps(reply).encode())
        self.reply(b"{}", status=404)

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path.endswith("/jobs/recordInfo"):
            self.note("recordInfo")
            task_id = parse_qs(parts.query)["taskId"][0]
            done = time.monotonic() - self.created[task_id] >= L
            return self.reply(json.dumps(self._record(task_id, done)).encode())
        if parts.path.startswith("/results/"):
            self.note("result download")
            number = int(parts.path.split("_")[1])
            return self.reply(self.results[number % len(self.results)], "image/png")
        self.reply(b"{}", status=404)

    def _record(self, task_id, done):
        data = {
            "taskId": task_id,
            "model": "seedream/4.5-edit",
            "state": "success" if done else "generating",
            "param": "{}",
            "resultJson": json.dumps({"resultUrls": [f"{self.base}/results/{task_id}.png"]})
            if done
            else "",
            "failCode": "",
            "failMsg": "",
        }
        return {"code": 200, "msg": "success", "data": data}

    def _call_back(self, task_id, url):
        time.sleep(L)
        timestamp = str(int(time.time()))
        digest = hmac.new(
            WEBHOOK_SECRET.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256
        ).digest()
        headers = {
            "X-Webhook-Timestamp": timestamp,
            "X-Webhook-Signature": base64.b64encode(digest).decode(),
        }
        self.note("callback")
        requests.post(url, json=self._record(task_id, True), headers=headers, timeout=10)


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_fake() -> str:
    cache = Path(tempfile.gettempdir()) / "nerstudio-bench-results-v1"  # made once, then reused
    if len(list(cache.glob("*.png"))) < 8:
        cache.mkdir(exist_ok=True)
        base = photo((1024, 1280), seed=100)
        for n in range(8):  # eight different results
            image = base.copy()
            image.paste((n * 31 % 256, 120, 200 - n * 20), (60 + 40 * n, 900, 120 + 40 * n, 960))
            (cache / f"{n}.png").write_bytes(encoded(image, "PNG", compress_level=6))
    Fake.results = [path.read_bytes() for path in sorted(cache.glob("*.png"))]
    assert all(1_000_000 <= len(r) <= 2_000_000 for r in Fake.results), [
        len(r) for r in Fake.results
    ]
    fake = serve(ThreadingHTTPServer(("127.0.0.1", 0), Fake))
    Fake.base = f"http://127.0.0.1:{fake.server_address[1]}"
    return Fake.base


def provider_env(fake_url: str) -> dict[str, str]:
    return {
        # The platform's accounts point at the fake providers (catalogue models use them).
        "NERSTUDIO_KIE_API_KEY": "bench",
        "NERSTUDIO_KIE_BASE_URL": fake_url,
        "NERSTUDIO_KIE_UPLOAD_BASE_URL": fake_url,
        "NERSTUDIO_KIE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "NERSTUDIO_OPENAI_API_KEY": "bench",
        "NERSTUDIO_OPENAI_BASE_URL": fake_url,
        "NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE": "100000",
        "NERSTUDIO_GENERATE_PER_ORG_PER_MINUTE": "100000",
        "NERSTUDIO_EGRESS_ALLOW_LOOPBACK": "true",
        # This process (the fake providers, the member) stands for machines elsewhere: with the
        # workers niced below it, every step of theirs would wait on it.
        "NERSTUDIO_WORKER_NICENESS": "0",
        "DEBUG": "true",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "nerstudio.settings.base",
    }


# --- The member -----------------------------------------------------------------------------------


def seed() -> tuple[str, dict]:
    """One organization with credits, Seedream (kie), the kie prompt writer and OpenAI vision
    enabled, and one signed-in admin. Returns the session key and the form's model fields."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from accounts.models import User
    from credits import services as credits
    from orgs.models import Membership
    from workspace.services import open_organization

    org = open_organization(name="Bench latency")
    user = User.objects.create_user(email="latency@bench.test", name="Bench")
    Membership.objects.create(org=org, user=user, role=Membership.Role.ADMIN)
    credits.top_up(org=org, amount=1_000_000)
    org.providers.update(enabled=False)
    for name in ("Seedream 4.5 Edit", "Gemini 3 Pro (kie.ai)", "GPT-4o vision (OpenAI)"):
        provider = org.providers.get(name=name)
        provider.enabled, provider.is_default = True, provider.kind == "image"
        provider.save()
    seedream = org.providers.get(name="Seedream 4.5 Edit")
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    form = {
        "model": str(seedream.public_id),
        "aspect_ratio": seedream.default_aspect_ratio or "1:1",
        "quality": seedream.default_quality or "",
    }
    return session.session_key, form


CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Member:
    def __init__(self, url: str, session_key: str, form: dict):
        self.url, self.form = url, form
        self.http = requests.Session()
        self.http.cookies.set("sessionid", session_key, domain="127.0.0.1", path="/")
        self.product = photo((1000, 1250), seed=1)
        self.reference = photo((1000, 1250), seed=2)

    def generate(self, count: int, run: int) -> dict:
        """POST the Generate form and wait for the generation to finish; its timeline."""
        page = self.http.get(f"{self.url}/generate/", timeout=30)
        token = CSRF.search(page.text)[1]
        files = {
            "products": ("product.jpg", upload_photo(self.product, run), "image/jpeg"),
            "references": ("reference.jpg", upload_photo(self.reference, run), "image/jpeg"),
        }
        data = {
            "csrfmiddlewaretoken": token,
            "prompt": f"A ceramic bottle on wet slate at dusk, take {run}",
            "count": str(count),
            **self.form,
        }
        Fake.variants = count
        with Fake.lock:
            Fake.events = []
        posted = time.time()
        response = self.http.post(
            f"{self.url}/generate/", data=data, files=files, allow_redirects=False, timeout=60
        )
        redirected = time.time()
        assert response.status_code == 302, (response.status_code, response.text[:2000])
        public_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
        done = wait_done(public_id, count)
        with Fake.lock:
            events = list(Fake.events)
        return {
            "count": count,
            "posted": posted,
            "redirected": redirected,
            **done,
            "events": events,
        }


def wait_done(public_id: str, count: int, timeout: float = 120) -> dict:
    from django.db import close_old_connections

    from generation.models import Generation

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generation = Generation.objects.filter(public_id=public_id).first()
        if generation and generation.is_finished:
            images = list(generation.images.values_list("status", "finished_at"))
            assert [s for s, _ in images] == ["done"] * count, f"images: {images}"
            close_old_connections()
            return {
                "done": generation.finished_at.timestamp(),
                "images_done": sorted(f.timestamp() for _, f in images),
            }
        time.sleep(0.02)
    raise TimeoutError(f"generation {public_id} did not finish in {timeout:g} s")


# --- The two modes --------------------------------------------------------------------------------


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def run_embedded() -> dict:
    tmp = tempfile.mkdtemp(prefix="nerstudio-latency-")
    fake_url = start_fake()
    app_server = make_server(
        "127.0.0.1",
        0,
        lambda e, s: wsgi(e, s),
        server_class=ThreadingWSGIServer,
        handler_class=QuietHandler,
    )
    app_url = f"http://127.0.0.1:{app_server.server_address[1]}"
    os.environ.update(
        {
            **provider_env(fake_url),
            "DATABASE_URL": f"sqlite:///{tmp}/b.db",
            "NERSTUDIO_MEDIA_ROOT": f"{tmp}/media",
            "NERSTUDIO_PUBLIC_URL": app_url,
            "NERSTUDIO_EMBEDDED_BEAT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
    )
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0)
    wsgi = get_wsgi_application()
    serve(app_server)
    key, form = seed()
    timelines = measure(Member(app_url, key, form))
    return {"mode": "embedded", "stack": "one process, task thread pools, SQLite", **timelines}


def run_production() -> dict:
    import load
    import redis

    tmp = Path(tempfile.mkdtemp(prefix="nerstudio-latency-"))
    fake_url = start_fake()
    env = {**load.server_env(tmp), **provider_env(fake_url)}
    env.update(
        {
            "DATABASE_URL": DATABASE,
            "REDIS_URL": REDIS,
            "DJANGO_SETTINGS_MODULE": "bench.latency_settings",
        }
    )
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    stack.recreate_database(DATABASE)
    redis.Redis.from_url(REDIS).flushdb()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    key, form = seed()
    procs = load.Stack(env, tmp)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        names = procs.up()
        before = cpu_by_process(procs)
        timelines = measure(Member(load.URL, key, form))
        after = cpu_by_process(procs)
    finally:
        procs.stop()
    tracebacks = {k: v for k, v in procs.tracebacks().items() if v}
    generations = (RUNS + 1) * len(COUNTS)
    return {
        "mode": "production",
        "stack": f"gunicorn + {load.web_workers()} uvicorn workers, {', '.join(names)}; "
        f"PostgreSQL, Redis db 5; logs in {tmp}",
        "cpu_ms_per_generation": {
            name: 1000 * (after[name] - before[name]) / generations for name in after
        },
        "tracebacks": tracebacks,
        **timelines,
    }


def cpu_by_process(procs) -> dict[str, float]:
    """CPU seconds so far per Procfile line (load.Stack.cpu_seconds: a dict, or one total)."""
    cpu = procs.cpu_seconds()
    return cpu if isinstance(cpu, dict) else {"stack": cpu}


def measure(member: Member) -> dict:
    member.generate(4, run=0)  # warm-up: imports, connections, first templates
    runs = {str(n): [] for n in COUNTS}
    for run in range(1, RUNS + 1):
        for n in COUNTS:
            runs[str(n)].append(member.generate(n, run=run * 10 + n))
    return {"runs": runs}


# --- Report ---------------------------------------------------------------------------------------


def first(events, kind):
    return min(t for k, t in events if k == kind)


def last(events, kind):
    return max(t for k, t in events if k == kind)


SEGMENTS = (
    "POST (upload, ingest, hold) → redirect",
    "redirect → vision request",
    "vision answer → prompt request",
    "prompt answer → first createTask",
    "first → last createTask",
    "last callback → generation done",
    "other",
)


def timeline(run: dict) -> dict:
    e, ideal = run["events"], 3 * L
    total = run["done"] - run["posted"]
    parts = [
        run["redirected"] - run["posted"],
        first(e, "vision request") - run["redirected"],
        first(e, "prompt request") - last(e, "vision answer"),
        first(e, "createTask") - last(e, "prompt answer"),
        last(e, "createTask") - first(e, "createTask"),
        run["done"] - last(e, "callback"),
    ]
    overhead = total - ideal
    return {"total": total, "overhead": overhead, "parts": [*parts, overhead - sum(parts)]}


def pct(values, q):
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(result: dict) -> bool:
    print(f"\n== {result['mode']} mode: {result['stack']}")
    ideal = 3 * L
    overheads = {}
    for n in COUNTS:
        lines = [timeline(r) for r in result["runs"][str(n)]]
        totals = [t["total"] for t in lines]
        overheads[n] = statistics.median(t["overhead"] for t in lines) * 1000
        print(
            f"N = {n}: ideal {ideal:.3f} s; measured p50 {statistics.median(totals):.3f} s, "
            f"p95 {pct(totals, 95):.3f} s ({len(totals)} runs); overhead p50 {overheads[n]:.0f} ms"
        )
        for i, name in enumerate(SEGMENTS):
            values = [t["parts"][i] * 1000 for t in lines]
            print(f"    {name:<40} p50 {statistics.median(values):7.1f} ms")
    if cpu := result.get("cpu_ms_per_generation"):
        print(
            f"stack CPU per generation (N = 4 and 8 together, warm-up included): "
            f"{sum(cpu.values()):.0f} ms = "
            + ", ".join(f"{name} {ms:.0f}" for name, ms in sorted(cpu.items()))
        )
    if result.get("tracebacks"):
        print(f"tracebacks in the logs: {result['tracebacks']}")
    extra = (overheads[8] - overheads[4]) / 4
    ok4, ok_extra = overheads[4] <= GOAL_MS, extra <= GOAL_EXTRA_MS
    print(
        f"goal: overhead per generation at N = 4 ≤ {GOAL_MS:g} ms: "
        f"{overheads[4]:.0f} ms — {verdict(ok4)}"
    )
    print(
        f"goal: overhead per extra image ≤ {GOAL_EXTRA_MS:g} ms: ({overheads[8]:.0f} − "
        f"{overheads[4]:.0f}) / 4 = {extra:.1f} ms — {verdict(ok_extra)}"
    )
    return ok4 and ok_extra


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] in MODES:  # a child: one mode, its result as JSON
        result = run_embedded() if sys.argv[1] == "embedded" else run_production()
        Path(sys.argv[2]).write_text(json.dumps(result))
        return 0
    print(stack.describe_machine(), flush=True)
    modes = [os.environ["BENCH_MODE"]] if os.environ.get("BENCH_MODE") else list(MODES)
    print(
        f"providers: fixed latency L = {L:g} s; N = {' and '.join(map(str, COUNTS))}; {RUNS} runs "
        f"each (+1 warm-up); {os.cpu_count()} CPUs, load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg()),
        flush=True,
    )
    ok = True
    for mode in modes:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run([sys.executable, __file__, mode, out.name], check=True)
            ok &= report(json.loads(Path(out.name).read_text()))
    print("\nall goals met" if ok else "\nsome goals MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
