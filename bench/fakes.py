"""What the benches' fake providers answer: the real OpenAI chat completion shape (PROVIDERS.md),
over a quiet keep-alive HTTP handler."""

import json
from http.server import BaseHTTPRequestHandler


class FakeHandler(BaseHTTPRequestHandler):
    """A fake provider's request handler: HTTP/1.1, no access log, `reply` sends one body."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waited for the
    # client's delayed ACK of the headers, 40 ms on Linux, on every reused connection.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, body: bytes, content_type="application/json", status=200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def completion(content: dict) -> bytes:
    """A chat.completion whose message is `content` as JSON."""
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(content)},
                }
            ],
        }
    ).encode()
