"""Fixtures for provider tests: a fake HTTP seam (`responses`) and a real, slow local server."""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses
from PIL import Image


@pytest.fixture
def http():
    """Every outgoing request must match a registered fake, and every fake must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def sent_json(call) -> dict:
    return json.loads(call.request.body)


def png_bytes(size=(32, 32), colour=(200, 40, 60), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes(size=(32, 32), colour=(200, 40, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


def json_completion(content: dict, finish_reason: str = "stop") -> dict:
    """An OpenAI chat.completion object carrying `content` as its JSON answer (PROVIDERS.md
    §2.1)."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": json.dumps(content),
                    "refusal": None,
                },
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    }


def variants_completion(variants: list[str], finish_reason: str = "stop") -> dict:
    return json_completion({"variants": variants}, finish_reason)


# --- A real HTTP server for timing tests --------------------------------------------------------


@dataclass
class Route:
    status: int = 200
    body: bytes = b"{}"
    delay: float = 0.0  # before the headers
    trickle: float = 0.0  # seconds between body bytes, after the headers
    stall: float = 0.0  # pause after the first half of the body


@dataclass
class SlowServer:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[tuple[str, float]] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)

    def route(self, prefix: str, **kwargs) -> str:
        """Serve `prefix/*` as described; returns the base URL to configure an adapter with."""
        self.routes[prefix] = Route(**kwargs)
        return self.url + prefix


def _handler(server: SlowServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like real providers

        def do_GET(self):
            self._serve()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self._serve()

        def _serve(self):
            server.hits.append((self.path, time.monotonic()))
            server.client_ports.append(self.client_address[1])
            route = next(
                (r for p, r in server.routes.items() if self.path.startswith(p + "/")),
                Route(status=404, body=b'{"error": "no route"}'),
            )
            time.sleep(route.delay)
            try:
                self.send_response(route.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(route.body)))
                if route.trickle:
                    # The client then drops its handle on the socket, so only the whole-call
                    # deadline (not a per-read socket timeout) can stop the drip.
                    self.send_header("Connection", "close")
                self.end_headers()
                if route.trickle:
                    for byte in route.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(route.trickle)
                elif route.stall:
                    half = len(route.body) // 2
                    self.wfile.write(route.body[:half])
                    self.wfile.flush()
                    time.sleep(route.stall)
                    self.wfile.write(route.body[half:])
                else:
                    self.wfile.write(route.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as the test intends

        def log_message(self, format, *args):
            pass

    return Handler


@pytest.fixture
def slow_server(loopback_egress):
    state = SlowServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    httpd.block_on_close = False  # don't wait for handlers still sleeping for a gone client
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
