import contextlib
import gc
import os

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nerstudio.settings.base")

app = Celery("nerstudio", fixups=["lib.celery_fixup:fixup"])  # Django, keeping the db pool
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def yield_the_cpu_to_the_web(**_kwargs) -> None:
    """On a box shared with web processes, a burst of result decoding or rendering must not slow
    the pages down: workers (and their pool processes, which inherit it) run at a lower CPU
    priority. On a box of their own this changes nothing.

    Linux's autogroup scheduling (on by default on many kernels and VMs) compares a niceness only
    within one session: a worker started in a session of its own (a process manager's, the
    benches') would keep an equal share beside the web. Such a worker lowers its session's
    group too. Under systemd or in containers, where cgroups decide the shares, give the worker
    units a lower CPU weight (CPUWeight=, --cpu-shares) instead."""
    from django.conf import settings

    niceness = settings.NERSTUDIO_WORKER_NICENESS
    if not niceness:
        return
    os.nice(niceness)
    if os.getsid(0) == os.getpid():  # the session is the worker's own
        # Without autogroup (no such file) the niceness is all it takes.
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as group:
            group.write(str(niceness))


@worker_process_init.connect  # in each prefork pool process (results, render)
@worker_ready.connect  # in the main process, where a thread pool's tasks run (pipeline, submit)
def freeze_startup_objects(**_kwargs) -> None:
    """What the worker made to start (Django, the tasks, the app: as in the web processes,
    nerstudio/asgi.py) lives as long as the process: frozen, full garbage collections no longer
    walk it."""
    gc.freeze()
