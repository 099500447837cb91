"""CPU work nobody waits for, at a lower CPU priority than the rest of its process.

Linux gives every thread a niceness of its own, and a thread may always lower its priority
(raising it back needs privileges). So the work runs on a short-lived thread that lowers its own
niceness first: the process's other threads and processes of the same priority (a Celery pool's,
which share the worker's scheduling group) keep the cores while it waits. Decoding a result for
its thumbnail is such work: the collections beside it are what members wait for. Where the
niceness cannot be changed, the work runs at the caller's.
"""

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

LOWER_BY = 10  # niceness steps, up to the maximum of 19


def run_at_low_priority[T](work: Callable[..., T], /, *args: Any) -> T:
    """`work(*args)` on a thread of its own at a lower priority; its result, or its exception."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed
            thread = threading.get_native_id()
            niceness = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness + LOWER_BY))
        try:
            outcome["value"] = work(*args)
        except BaseException as exc:  # handed to the caller, as if called directly
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="low-priority", daemon=True)  # never holds an exit
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
