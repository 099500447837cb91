"""Running calls at the same moment, for race tests (each thread has its own connection)."""

import threading

from django.db import connections


def race(calls, expected=()):
    """Run every call at once, each in its own thread; return each one's result or the expected
    exception it raised. Any other exception, or a thread that hangs, fails the test."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            outcomes[i] = call()
        except BaseException as exc:  # kept: expected ones are results, others fail the test
            outcomes[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a racing thread hung"
    unexpected = [
        o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, expected)
    ]
    assert not unexpected, unexpected
    return outcomes
