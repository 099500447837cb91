"""SQLite (the embedded default) with its writers queued in the process instead of in SQLite.

SQLite lets one connection write at a time. A writer that finds the database locked waits in
SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries
however soon the lock comes free: with a generation's results collected on several threads at
once, a write transaction waited p90 22 ms and p99 131 ms to begin (bench/generation_latency.py,
embedded) for transactions that take a few ms. Here a write transaction (atomic blocks begin
IMMEDIATE: settings) and a write statement outside any transaction first take the process's writer
lock, which passes to the next writer the moment the holder commits or rolls back. Reads never
wait (WAL). Another process writing (a management command) is still waited for by SQLite.

ENGINE "lib.sqlite" in DATABASES; everything else is Django's SQLite backend.
"""

import sqlite3 as Database  # Django's name for it
import threading
from contextlib import contextmanager

from django.db.backends.sqlite3 import base

_writer = threading.Lock()  # one per process, as SQLite has one writer per database
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
DEFAULT_WAIT = 5.0  # seconds, as sqlite3's own default timeout


def _take_writer(wait: float) -> None:
    if not _writer.acquire(timeout=wait):
        raise Database.OperationalError("database is locked")


def _writes(query: str) -> bool:
    return query.lstrip()[:7].upper().startswith(WRITES)


class WriterQueueCursor(base.SQLiteCursorWrapper):
    """A write statement outside a transaction holds the writer lock while it runs."""

    wait = DEFAULT_WAIT

    @contextmanager
    def _queued(self, query: str):
        if self.connection.in_transaction or not _writes(query):
            yield  # a transaction's statement (its writer lock is held) or a read
            return
        _take_writer(self.wait)
        try:
            yield
        finally:
            _writer.release()

    def execute(self, query, params=None):
        with self._queued(query):
            return super().execute(query, params)

    def executemany(self, query, param_list):
        with self._queued(query):
            return super().executemany(query, param_list)


class DatabaseWrapper(base.DatabaseWrapper):
    holds_writer = False

    @property
    def writer_wait(self) -> float:
        return float(self.settings_dict["OPTIONS"].get("timeout", DEFAULT_WAIT))

    def create_cursor(self, name=None):
        cursor = self.connection.cursor(factory=WriterQueueCursor)
        cursor.wait = self.writer_wait
        return cursor

    def _start_transaction_under_autocommit(self):
        if not self.holds_writer:
            with self.wrap_database_errors:
                _take_writer(self.writer_wait)
            self.holds_writer = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._give_writer()
            raise

    def _give_writer(self) -> None:
        if self.holds_writer:
            self.holds_writer = False
            _writer.release()

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._give_writer()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._give_writer()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._give_writer()  # closing rolls an open transaction back
