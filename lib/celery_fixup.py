"""Celery's Django fixup, except that each worker process keeps its database pool between tasks.

Before and after every task the stock fixup closes the database connections and, in a prefork
worker, each process's whole psycopg pool (celery/celery#10554, open): every task of the results
and render workers opened a new PostgreSQL connection — 20–60 ms of a result's collection on a
2-core box (bench/generation_latency.py), and a server backend started and stopped per task.
Here a task's connection goes back to its process's pool (Django's `close()` does that when
pooling is on) and the pool stays. A pool a process inherits at fork is still dropped, as the
stock fixup does (on_worker_process_init, unchanged).

nerstudio/celery.py names `fixup` in the app's `fixups`, in place of celery.fixups.django's.
"""

from celery.fixups.django import DjangoFixup, DjangoWorkerFixup  # type: ignore[attr-defined]


class PoolKeepingWorkerFixup(DjangoWorkerFixup):
    def close_database(self, **kwargs) -> None:
        for connection in self._db.connections.all(initialized_only=True):
            try:
                connection.close()
            except self.interface_errors:
                pass  # already broken: the pool replaces it on its next checkout
            except self.DatabaseError as exc:
                if "closed" not in str(exc) and "not connected" not in str(exc):
                    raise


class PoolKeepingDjangoFixup(DjangoFixup):
    _worker_fixup: DjangoWorkerFixup | None

    @property
    def worker_fixup(self) -> DjangoWorkerFixup:
        if self._worker_fixup is None:
            self._worker_fixup = PoolKeepingWorkerFixup(self.app)
        return self._worker_fixup

    @worker_fixup.setter
    def worker_fixup(self, value: DjangoWorkerFixup) -> None:
        self._worker_fixup = value


def fixup(app) -> DjangoFixup:
    installed = PoolKeepingDjangoFixup(app)
    installed.install()  # returns the fixup; celery-types says None
    return installed
