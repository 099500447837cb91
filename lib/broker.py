"""The Celery broker transport: kombu's Redis transport, surviving the loss of Redis.

When Redis goes away while a worker waits on it (a BRPOP in flight), kombu 5.7 closes the
channel by first reading that BRPOP's reply. The read fails, the close stops half-way, and the
connection is then torn down around the half-closed channel; Celery's reconnect path closes the
channel a second time, which now restores unacknowledged messages through a transport that
has no client left, and the worker dies: "Unrecoverable error: AttributeError('NoneType'
object has no attribute 'hostname')". Here a failed read of the pending reply is what it is
(the reply is gone with the server) and the close goes on, so the worker reconnects when
Redis is back. Selected with CELERY_BROKER_TRANSPORT.
"""

import contextlib
from queue import Empty

from kombu.transport import redis

# kombu's redis Channel has no type stubs for its internals (_in_poll, _brpop_read).


class Channel(redis.Channel):
    def close(self) -> None:
        if self._in_poll:  # type: ignore[has-type]
            # The reply is gone with the server: _brpop_read drops the socket and raises one of
            # the connection errors, or AttributeError when the socket was dropped already.
            with contextlib.suppress(Empty, AttributeError, *self.connection.connection_errors):
                self._brpop_read()  # type: ignore[attr-defined]
            self._in_poll = None
        super().close()


class Transport(redis.Transport):
    Channel = Channel
