"""Peak memory of the web process under hostile uploads (issue 7), against the real ASGI server.

Starts uvicorn on nerstudio.asgi:application in a subprocess, as production runs it (DEBUG=true,
a temporary SQLite database migrated first, a temporary media root, no Redis), signs in an org
admin through a session cookie, then per scenario sends P parallel POSTs to /generate/, each with
4 product photos + 4 reference images built with Pillow, and reads the server's peak RSS (VmHWM
after a reset, and VmRSS sampled every 10 ms). A fresh server per scenario, so each peak is its own.
Last, two oversized requests: a 50 MB file part and a 100 MB declared body.

The org has no prompt writer or vision model enabled, so a generation that was accepted stops at
once in the background (its credits are released): what is measured is the upload path. In
production the pipeline runs in Celery workers, not in the web process.

    .venv/bin/python bench/upload_memory.py
    BENCH_PARALLEL=12 BENCH_SCENARIOS=hostile,jpeg .venv/bin/python bench/upload_memory.py
"""

import io
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
import stack

ROOT = Path(__file__).resolve().parent.parent
PARALLEL = int(os.environ.get("BENCH_PARALLEL", 6))
GOAL_MB = 300
MB = 1024 * 1024


@dataclass
class Scenario:
    key: str
    title: str
    fmt: str  # Pillow format name
    mode: str
    size: tuple[int, int]


SCENARIOS = [
    Scenario("hostile", "the attack: 40 MP PNGs (RGB)", "PNG", "RGB", (7745, 5164)),
    Scenario("png", "largest PNG accepted: 4096×4096 (RGB)", "PNG", "RGB", (4096, 4096)),
    Scenario("png-alpha", "PNG with alpha, resized: 8192×2048 (RGBA)", "PNG", "RGBA", (8192, 2048)),
    Scenario("jpeg", "40 MP JPEGs, decoded at 1/2 scale", "JPEG", "RGB", (7745, 5164)),
    Scenario("webp", "largest WebP accepted: 2048×2048 (RGB)", "WEBP", "RGB", (2048, 2048)),
]


def picture(scenario: Scenario, index: int) -> bytes:
    """A highly compressible picture (flat colour with a band), different for every index."""
    from PIL import Image, ImageDraw

    colour = (40 + 25 * index, 90, 200 - 20 * index, 255)[: len(scenario.mode)]
    image = Image.new(scenario.mode, scenario.size, colour)
    width, height = scenario.size
    ImageDraw.Draw(image).rectangle((width // 4, height // 3, width // 2, height // 2), fill=None)
    out = io.BytesIO()
    image.save(out, scenario.fmt, **({"quality": 85} if scenario.fmt != "PNG" else {}))
    return out.getvalue()


# --- The server -----------------------------------------------------------------------------------


class Server:
    def __init__(self, env: dict, log_path: Path):
        self.port = stack.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "nerstudio.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if not stack.wait_until_healthy(self.url, 60):
            raise RuntimeError(f"the server did not start; see {log_path}")

    def status(self, field: str) -> int:
        """A /proc/<pid>/status memory field (VmRSS, VmHWM) in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # resets VmHWM
            return True
        except OSError:
            return False

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class Sampler(threading.Thread):
    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server, self.peak, self.running = server, 0, True

    def run(self):
        while self.running:
            try:
                self.peak = max(self.peak, self.server.status("VmRSS"))
            except (OSError, KeyError):
                return
            time.sleep(0.01)

    def stop(self) -> int:
        self.running = False
        self.join()
        return self.peak


# --- The organization and the browser -------------------------------------------------------------


def prepare_org():
    """An org with an admin, credits and one enabled image model; nothing else enabled."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from accounts.models import User
    from credits import services as credits
    from orgs.models import Membership
    from providers.org_registry import providers_for
    from workspace.services import open_organization

    org = open_organization(name="Bench uploads")
    user = User.objects.create_user(email="bench-uploads@example.com", name="Bench Admin")
    Membership.objects.create(org=org, user=user, role=Membership.Role.ADMIN)
    credits.top_up(org=org, amount=100_000)
    org.providers.exclude(kind="image").update(enabled=False)  # the pipeline stops at once
    images = providers_for(org.pk).image
    model = next((p for p in images if p.is_default), images[0])

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return model, session.session_key


class Browser:
    def __init__(self, url: str, session_key: str):
        self.url = url
        self.http = requests.Session()
        self.http.cookies.set("sessionid", session_key)
        page = self.http.get(f"{url}/generate/", timeout=30)
        page.raise_for_status()
        self.csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)

    def generate(self, model, products, references):
        files = [("products", (f"p{i}.{ext}", data)) for i, (ext, data) in enumerate(products)]
        files += [("references", (f"r{i}.{ext}", data)) for i, (ext, data) in enumerate(references)]
        fields = {
            "csrfmiddlewaretoken": self.csrf,
            "prompt": "A ceramic mug on a linen table",
            "model": str(model.public_id),
            "aspect_ratio": model.default_aspect_ratio,
            "quality": model.default_quality,
            "count": "1",
        }
        response = self.http.post(
            f"{self.url}/generate/", data=fields, files=files, allow_redirects=False, timeout=300
        )
        return response


def outcome(response) -> str:
    if response.status_code == 302:
        return "302 accepted"
    messages = re.findall(r"(?:field-error|message-error)[^>]*>([^<]+)<", response.text)
    first = messages[0].replace("&#x27;", "'") if messages else response.text[:80]
    return f"{response.status_code} {first.strip()}"


# --- Oversized requests through a raw socket (to see when the answer comes) -----------------------


def stream_oversized(url: str, *, declared: int, body: bytes, content_type: str, cookie: str):
    """Send `body` in 64 KB pieces and stop once the server answers. Returns (status, first line
    of the answer, body bytes the client had handed to its kernel by then)."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    head = (
        f"POST /generate/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {declared}\r\nCookie: sessionid={cookie}\r\n\r\n"
    ).encode()
    pending, sent, answer = memoryview(head), 0, b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not pending and sent < len(body):
                pending = memoryview(body)[sent : sent + 65536]
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 1)
            if readable:
                data = sock.recv(65536)
                answer += data
                if not data or b"</html>" in answer:
                    break
            if writable and pending:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = memoryview(b"")
                    continue
                if pending.obj is not head:
                    sent += n
                pending = pending[n:]
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    message = re.search(rb'role="alert">([^<]+)<', answer)
    return status_line, (message.group(1).decode() if message else ""), sent


def oversized_requests(server: Server, session_key: str):
    boundary = "----bench-oversized"
    part = 50 * 1000 * 1000
    prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="products"; filename="big.png"\r\n'
        f"Content-Type: image/png\r\n\r\n"
    ).encode()
    body = prefix + b"\0" * part + f"\r\n--{boundary}--\r\n".encode()
    content_type = f"multipart/form-data; boundary={boundary}"
    results = []
    for label, declared in (
        ("one 50 MB file part", len(body)),
        ("a 100 MB declared body", 100 * MB),
    ):
        payload = body if declared == len(body) else body + b"\0" * (declared - len(body))
        before = server.log_text()
        status, message, sent = stream_oversized(
            server.url,
            declared=declared,
            body=payload,
            content_type=content_type,
            cookie=session_key,
        )
        time.sleep(0.3)
        new_log = server.log_text()[len(before) :]
        seen = re.search(r"413 for POST /generate/ from [^:]+: (.+)", new_log)
        results.append((label, declared, status, message, sent, seen.group(1) if seen else "?"))
    return results


# --- Main -----------------------------------------------------------------------------------------


def run_scenario(scenario, env, tmp, model, session_key, files_per_request):
    started = time.monotonic()
    pictures = [picture(scenario, i) for i in range(files_per_request)]
    ext = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[scenario.fmt]
    build_s = time.monotonic() - started
    server = Server(env, Path(tmp) / f"server-{scenario.key}.log")
    try:
        warm = Browser(server.url, session_key)
        small = picture(Scenario("warm", "", "PNG", "RGB", (64, 48)), 0)
        assert warm.generate(model, [("png", small)], []).status_code == 302, server.log_text()
        time.sleep(1.0)
        baseline = server.status("VmRSS")
        reset = server.reset_peak()
        browsers = [Browser(server.url, session_key) for _ in range(PARALLEL)]
        half = files_per_request // 2
        products = [(ext, d) for d in pictures[:half]]
        references = [(ext, d) for d in pictures[half:]]
        sampler = Sampler(server)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(PARALLEL) as pool:
            responses = list(pool.map(lambda b: b.generate(model, products, references), browsers))
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        sampled = sampler.stop()
        peak = max(sampled, server.status("VmHWM") if reset else 0)
        outcomes = {}
        for response in responses:
            key = outcome(response)
            outcomes[key] = outcomes.get(key, 0) + 1
        extra = oversized_requests(server, session_key) if scenario.key == "hostile" else None
    finally:
        server.stop()
    return {
        "scenario": scenario,
        "file_kb": sum(len(p) for p in pictures) / len(pictures) / 1024,
        "build_s": build_s,
        "baseline": baseline,
        "peak": peak,
        "elapsed": elapsed,
        "outcomes": outcomes,
        "oversized": extra,
    }


def main():
    tmp = tempfile.mkdtemp(prefix="nerstudio-upload-bench-")
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "NERSTUDIO_MEDIA_ROOT": f"{tmp}/media",
        "NERSTUDIO_EMBEDDED_BEAT": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "nerstudio.settings.base",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    os.environ.update(env)
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    model, session_key = prepare_org()
    files = min(4, model.max_product_images) + min(4, model.max_reference_images)
    wanted = [k for k in os.environ.get("BENCH_SCENARIOS", "").split(",") if k]
    chosen = [s for s in SCENARIOS if not wanted or s.key in wanted]

    print(
        f"uvicorn nerstudio.asgi:application (1 process), DEBUG=true, SQLite, no Redis; "
        f"{PARALLEL} parallel POST /generate/, each {files} files "
        f"({min(4, model.max_product_images)} product photos + "
        f"{min(4, model.max_reference_images)} references) to {model.name}"
    )
    print(
        f"limits: {settings.NERSTUDIO_UPLOAD_MAX_BYTES / MB:g} MB per file; JPEG "
        f"{settings.NERSTUDIO_UPLOAD_MAX_PIXELS / 1e6:g} MP (decoded within "
        f"{settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS / 1e6:.1f} MP); PNG "
        f"{min(settings.NERSTUDIO_UPLOAD_MAX_PIXELS, settings.NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS) / 1e6:.1f}"  # noqa: E501
        f" MP; WebP {settings.NERSTUDIO_UPLOAD_MAX_WEBP_PIXELS / 1e6:.1f} MP; long side stored "
        f"≤ {settings.NERSTUDIO_UPLOAD_MAX_SIDE}; request body ≤ "
        f"{settings.NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES / MB:g} MB"
    )
    print()
    missed = 0
    for scenario in chosen:
        result = run_scenario(scenario, env, tmp, model, session_key, files)
        peak_mb, base_mb = result["peak"] / MB, result["baseline"] / MB
        verdict = "met" if peak_mb < GOAL_MB else "MISSED"
        missed += verdict == "MISSED"
        print(f"{scenario.title} ({result['file_kb']:.0f} KB per file)")
        print(f"  baseline RSS {base_mb:7.1f} MB")
        print(
            f"  peak RSS     {peak_mb:7.1f} MB   (+{peak_mb - base_mb:.1f} MB)   "
            f"goal < {GOAL_MB} MB: {verdict}"
        )
        print(f"  time         {result['elapsed']:7.2f} s for {PARALLEL} requests")
        for text, n in result["outcomes"].items():
            print(f"  responses    {n} × {text}")
        for label, declared, status, message, sent, seen in result["oversized"] or ():
            print(f"  oversized: {label} (Content-Length {declared:,}): {status}")
            print(f"    message: {message}")
            print(f"    client had sent {sent:,} body bytes when the answer came")
            print(f"    server log: {seen}")
        print()
    print("all goals met" if not missed else f"{missed} scenario(s) MISSED the {GOAL_MB} MB goal")
    shutil.rmtree(tmp, ignore_errors=True)  # kept when a scenario failed: server logs are there
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
