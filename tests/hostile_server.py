"""A hostile endpoint on 127.0.0.1 for the tests of what an outbound call may cost us: a real TCP
server that answers every connection with a function of the test's choosing (headers sent a
byte at a time, a body that never ends, a TLS handshake that never finishes). The calls under
test need the development allowance for loopback (the `loopback_egress` fixture)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

Answer = Callable[[socket.socket], None]


@contextlib.contextmanager
def serving(answer: Answer) -> Iterator[str]:
    """http://127.0.0.1:<port>, whose every connection is handed to `answer` on its own thread.
    Connections still open at the end are closed, so a dripping answer stops with the test."""
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            connections.append(conn)
            threading.Thread(target=_answer, args=(answer, conn), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def _answer(answer: Answer, conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client gave up, as the tests intend
        answer(conn)


def read_request(conn: socket.socket) -> bytes:
    """The request's head and body (by its Content-Length), read whole."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def drip(conn: socket.socket, data: bytes, *, seconds: float) -> None:
    """`data` a byte at a time over about `seconds` (at once for 0): every byte comes well within
    any read timeout, so only a bound on the whole call stops it."""
    if seconds <= 0:
        conn.sendall(data)
        return
    pause = seconds / max(1, len(data))
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(pause)


def hold(conn: socket.socket, seconds: float = 10.0) -> None:
    """Keep the connection open without sending anything (until the client leaves)."""
    conn.settimeout(seconds)
    with contextlib.suppress(TimeoutError):
        while conn.recv(65536):
            pass
