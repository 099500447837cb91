"""End-to-end time of one generation against providers that each take a fixed latency L.

A fake provider server on 127.0.0.1 speaks the real kie.ai / OpenAI shapes: vision (OpenAI) and
the prompt writer (kie chat) answer after L; each kie image task calls back after L. NER Studio runs
in the embedded mode (tasks on the in-process pool) behind a real HTTP server, so the callback →
confirm → download path is the production one.

Ideal time = vision L + prompts L + images L (the N images in parallel, not N × L).

    .venv/bin/python bench/generation_latency.py            # L = 1.0 s, N = 4, 5 runs
    BENCH_LATENCY=0.5 BENCH_RUNS=10 .venv/bin/python bench/generation_latency.py
"""

import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from fakes import completion

ROOT = Path(__file__).resolve().parent.parent
L = float(os.environ.get("BENCH_LATENCY", 1.0))
N = int(os.environ.get("BENCH_IMAGES", 4))
RUNS = int(os.environ.get("BENCH_RUNS", 5))


def png(colour=(22, 160, 133), size=(512, 640)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


RESULT = png()


class FakeProviders(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    created: dict[str, float] = {}
    base = ""

    def log_message(self, *args):
        pass

    def _reply(self, body: bytes, content_type="application/json", status=200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        path = urlsplit(self.path).path
        if path.endswith("/chat/completions") and "gemini" in path:  # kie chat: the LLM step
            time.sleep(L)
            variants = [f"Variant {i}: the product in scene {i}" for i in range(N)]
            return self._reply(completion({"variants": variants}))
        if path.endswith("/chat/completions"):  # OpenAI: the vision step
            time.sleep(L)
            return self._reply(completion({"description": "Warm, soft light.", "palette": []}))
        if path.endswith("/file-base64-upload"):
            url = f"{self.base}/uploads/product.png"
            return self._reply(
                json.dumps(
                    {"success": True, "code": 200, "msg": "ok", "data": {"downloadUrl": url}}
                ).encode()
            )
        if path.endswith("/jobs/createTask"):
            task_id = f"task_{len(self.created)}_{time.monotonic_ns()}"
            self.created[task_id] = time.monotonic()
            threading.Thread(target=self._call_back, args=(task_id, body["callBackUrl"])).start()
            return self._reply(
                json.dumps({"code": 200, "msg": "success", "data": {"taskId": task_id}}).encode()
            )
        self._reply(b"{}", status=404)

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path.endswith("/jobs/recordInfo"):
            task_id = parse_qs(parts.query)["taskId"][0]
            done = time.monotonic() - self.created[task_id] >= L
            return self._reply(json.dumps(self._record(task_id, done)).encode())
        if parts.path.endswith(".png"):
            return self._reply(RESULT, "image/png")
        self._reply(b"{}", status=404)

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
        requests.post(url, json=self._record(task_id, True), timeout=10)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    tmp = tempfile.mkdtemp()
    fake = serve(ThreadingHTTPServer(("127.0.0.1", 0), FakeProviders))
    FakeProviders.base = f"http://127.0.0.1:{fake.server_address[1]}"
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
            "DEBUG": "true",
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{tmp}/b.db"),
            "NERSTUDIO_MEDIA_ROOT": f"{tmp}/media",
            "NERSTUDIO_PUBLIC_URL": app_url,
            "NERSTUDIO_EGRESS_ALLOW_LOOPBACK": "true",
            "NERSTUDIO_EMBEDDED_BEAT": "false",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "nerstudio.settings.base",
            # The platform's accounts point at the fake providers (catalogue models use them).
            "NERSTUDIO_KIE_API_KEY": "bench",
            "NERSTUDIO_KIE_BASE_URL": FakeProviders.base,
            "NERSTUDIO_KIE_UPLOAD_BASE_URL": FakeProviders.base,
            "NERSTUDIO_OPENAI_API_KEY": "bench",
            "NERSTUDIO_OPENAI_BASE_URL": FakeProviders.base,
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

    from accounts.models import User
    from credits import services as credits
    from generation import tasks
    from generation.models import Generation
    from orgs.models import Membership
    from tests.images import validated
    from workspace.services import open_organization

    org = open_organization(name=f"Bench {time.time()}")
    user = User.objects.create_user(email=f"bench{time.time()}@example.com")
    membership = Membership.objects.create(org=org, user=user, role="admin")
    credits.top_up(org=org, amount=10_000)
    org.providers.update(enabled=False)
    for name in ("Seedream 4.5 Edit", "Gemini 3 Pro (kie.ai)", "GPT-4o vision (OpenAI)"):
        provider = org.providers.get(name=name)
        provider.enabled, provider.is_default = True, provider.kind == "image"
        provider.save()
    seedream = org.providers.get(name="Seedream 4.5 Edit")

    times = []
    for run in range(RUNS):
        started = time.monotonic()
        generation = tasks.generate(
            membership=membership,
            provider=seedream,
            prompt="A ceramic mug",
            count=N,
            aspect_ratio="1:1",
            quality="basic",
            products=[validated()],
            references=[validated((200, 40, 60 + run), (120, 120))],  # new content: not cached
        )
        while not Generation.objects.get(pk=generation.pk).is_finished:
            time.sleep(0.005)
        times.append(time.monotonic() - started)
        assert generation.images.filter(status="done").count() == N, "an image failed"

    ideal = 3 * L
    median = statistics.median(times)
    print(
        f"providers: fixed latency L = {L:.2f} s; N = {N} images; {RUNS} runs; "
        f"database: {django.conf.settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
    )
    print(f"end to end: median {median:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s")
    print(
        f"ideal (vision + prompts + images, all parallel): {ideal:.3f} s "
        f"(serial images would be {2 * L + N * L:.3f} s)"
    )
    print(f"ratio measured / ideal: {median / ideal:.3f}")
    print(f"app overhead per generation: {(median - ideal) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
