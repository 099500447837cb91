"""Real listeners on 127.0.0.1 that record what reaches them."""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Listener:
    url: str
    requests: list[dict] = field(default_factory=list)
    status: int = 200
    body: bytes = b'{"code": 200, "msg": "success", "data": {}}'
    headers: dict = field(default_factory=dict)
    hang: bool = False  # never answer: hold each connection until the fixture ends
    released: threading.Event = field(default_factory=threading.Event)

    def saw(self, secret: str) -> bool:
        """Whether `secret` reached this listener anywhere: path, headers or body."""
        return any(
            secret in r["path"] or secret in str(r["headers"]) or secret.encode() in r["body"]
            for r in self.requests
        )


def _handler(state: Listener):
    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if state.hang:
                state.released.wait(120)
                return
            self.send_response(state.status)
            for name, value in {"Content-Type": "application/json", **state.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        do_GET = do_POST = do_PUT = _record

        def log_message(self, format, *args):
            pass

    return Handler


def start_listener():
    state = Listener(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return state, server


def stop(state, server):
    state.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def listener():
    state, server = start_listener()
    yield state
    stop(state, server)


@pytest.fixture
def second_listener():
    state, server = start_listener()
    yield state
    stop(state, server)
