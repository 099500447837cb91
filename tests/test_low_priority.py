"""Work run at a low CPU priority (lib.low_priority): the thumbnails' decoding."""

import os
import threading

import pytest

from lib.low_priority import LOWER_BY, run_at_low_priority


def own_niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_work_runs_on_another_thread_at_a_lower_priority_and_gives_back_its_result():
    caller = own_niceness()

    thread, niceness = run_at_low_priority(lambda: (threading.get_native_id(), own_niceness()))

    assert thread != threading.get_native_id()
    assert niceness == min(19, caller + LOWER_BY)
    assert own_niceness() == caller  # the caller's own priority is untouched


def test_the_works_exception_reaches_the_caller():
    def broken(value):
        raise ValueError(value)

    with pytest.raises(ValueError, match="not an image"):
        run_at_low_priority(broken, "not an image")
