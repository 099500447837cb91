"""The prompt stage with a prompt writer (and a vision provider) that hangs.

A fake OpenAI-compatible server on 127.0.0.1 answers on /good after BENCH_LATENCY seconds and never
answers on /hang (it holds the request for 120 s). An organization's chains put the hanging
provider first and a healthy one second, each with a 30 s timeout, under the default 30 s chain
deadline. Measured through the real services (registry, cooldowns in the cache, attempt records):

- healthy: the chain without the hanging provider (the reference);
- first run: the hanging provider first — how long until the healthy one answered;
- second run: the hanging provider is cooling down — the extra time over the healthy chain;
- vision: one reference with a hanging vision provider first, then the healthy one.

    .venv/bin/python bench/prompt_chain.py
"""

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fakes import completion

ROOT = Path(__file__).resolve().parent.parent
L = float(os.environ.get("BENCH_LATENCY", 0.2))
RUNS = int(os.environ.get("BENCH_RUNS", 5))


class Fake(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path.startswith("/hang"):
            time.sleep(120)
            return
        time.sleep(L)
        text = json.dumps(body)
        if "image_url" in text:
            content = {"description": "Warm terracotta tones, soft window light.", "palette": []}
        else:
            n = int(text.split("Write exactly ")[1].split(" ")[0]) if "Write exactly" in text else 3
            content = {
                "variants": [
                    {"title": f"Scene {i}", "prompt": f"The mug in scene {i}, soft window light"}
                    for i in range(n)
                ]
            }
        reply = completion(content)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def main():
    tmp = tempfile.mkdtemp()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    os.environ.update(
        {
            "DEBUG": "true",
            "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "NERSTUDIO_MEDIA_ROOT": f"{tmp}/media",
            "NERSTUDIO_EGRESS_ALLOW_LOOPBACK": "true",
            "NERSTUDIO_EMBEDDED_BEAT": "false",
            "LOG_LEVEL": "ERROR",
            "DJANGO_SETTINGS_MODULE": "nerstudio.settings.base",
        }
    )
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from providers import org_registry, services
    from providers.adapters.types import VariantsRequest
    from providers.models import Provider
    from tests.images import png_bytes
    from workspace.services import open_organization

    def own(org, adapter, name, path, priority):
        row = Provider(
            org=org,
            adapter=adapter,
            name=name,
            api_key="bench-key",
            priority=priority,
            base_url="https://fake.example",
            timeout_seconds=30,
        )
        row.full_clean(exclude=["org"])
        row.save()
        Provider.objects.filter(pk=row.pk).update(base_url=base + path)  # loopback: bench only
        return row

    def org_with(*chains):
        org = open_organization(name=f"Bench {time.monotonic_ns()}")
        org.providers.filter(kind__in=["llm", "vision"]).update(enabled=False)
        for priority, (adapter, name, path) in enumerate(chains):
            own(org, adapter, name, path, priority)
        org_registry.clear_registry()
        return org

    request = VariantsRequest(prompt="A ceramic mug on linen", n=3)

    def timed(org) -> tuple[float, object]:
        started = time.monotonic()
        result = services.write_variants(request, org_id=org.pk)
        return time.monotonic() - started, result

    healthy_org = org_with(("openai-chat", "Healthy writer", "/good/v1"))
    healthy = statistics.median(timed(healthy_org)[0] for _ in range(RUNS))

    hanging_org = org_with(
        ("openai-chat", "Hanging writer", "/hang/v1"), ("openai-chat", "Healthy writer", "/good/v1")
    )
    first, result = timed(hanging_org)
    answered_by = Provider.objects.get(pk=result.provider_id).name
    seconds = [timed(hanging_org)[0] for _ in range(RUNS)]
    cooled = statistics.median(seconds)
    extra_ms = (cooled - healthy) * 1000

    vision_org = org_with(
        ("openai-vision", "Hanging vision", "/hang/v1"),
        ("openai-vision", "Healthy vision", "/good/v1"),
    )
    started = time.monotonic()
    [outcome] = services.describe_references(org_id=vision_org.pk, images=[png_bytes()])
    vision = time.monotonic() - started

    deadline = settings.NERSTUDIO_LLM_CHAIN_DEADLINE
    print(
        f"fake providers: healthy answers after {L:.2f} s, hanging never; timeouts 30 s; "
        f"chain deadline {deadline:.0f} s; {RUNS} runs"
    )
    print(f"healthy chain:                         {healthy * 1000:7.0f} ms (median)")
    print(
        f"first run, first writer hanging:       {first:7.2f} s   answered by {answered_by}; "
        f"goal: within the {deadline:.0f} s deadline, by the next writer: "
        f"{'met' if first < deadline and answered_by == 'Healthy writer' else 'MISSED'}"
    )
    print(
        f"second run, hanging writer cooled down: {extra_ms:+7.0f} ms over the healthy chain; "
        f"goal ≤ 100 ms: {'met' if extra_ms <= 100 else 'MISSED'}"
    )
    print(
        f"one reference, first vision hanging:   {vision:7.2f} s   "
        f"described: {'yes' if hasattr(outcome, 'value') else 'no'}"
    )
    server.shutdown()


if __name__ == "__main__":
    main()
