"""The embedded default's SQLite backend (lib/sqlite): writers on several threads queue for the
process's writer lock instead of sleeping in SQLite's busy handler. Each connection here gets a
1 ms SQLite busy timeout, so a writer that reached SQLite while another held the database would
fail at once as "locked": only the queue lets them all through. On its own database file, so it
runs in CI (PostgreSQL) as well."""

import threading
import time
from contextlib import contextmanager

import pytest
from django.db import OperationalError
from django.db.utils import ConnectionHandler

from tests.concurrency import race


@pytest.fixture
def probe(tmp_path, django_db_blocker):
    """A connection handler for one SQLite file with the embedded settings (WAL, IMMEDIATE)
    and a counter table; each thread gets its own connection from it."""
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "lib.sqlite",
                "NAME": str(tmp_path / "writers.sqlite3"),
                "OPTIONS": {
                    "timeout": 20,
                    "transaction_mode": "IMMEDIATE",
                    "init_command": "PRAGMA journal_mode=WAL;",
                },
            }
        }
    )

    def connect():
        connection = handler["default"]
        connection.ensure_connection()
        connection.connection.execute("PRAGMA busy_timeout = 1")  # SQLite itself: no waiting
        return connection

    with django_db_blocker.unblock():
        with connect().cursor() as cursor:
            cursor.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)")
            cursor.execute("INSERT INTO counter VALUES (1, 0)")
        handler.close_all()
        yield connect
        handler.close_all()


@contextmanager
def write_transaction(connection):
    """What transaction.atomic() does with an outermost block, on this connection."""
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    try:
        with connection.cursor() as cursor:
            yield cursor
    except BaseException:
        connection.rollback()
        raise
    else:
        connection.commit()
    finally:
        connection.set_autocommit(True)


def write_and_hold(probe, holding: threading.Event, release: threading.Event, seconds=10.0):
    """Add 100 in a write transaction, say so (`holding`), and commit once `release` is set or
    `seconds` have passed."""
    connection = probe()
    with write_transaction(connection) as cursor:
        cursor.execute("UPDATE counter SET n = n + 100 WHERE id = 1")
        holding.set()
        release.wait(seconds)
    connection.close()


def count(connect) -> int:
    with connect().cursor() as cursor:
        cursor.execute("SELECT n FROM counter WHERE id = 1")
        return cursor.fetchone()[0]


def test_write_transactions_on_many_threads_all_commit_one_after_another(probe):
    def increments():
        connection = probe()
        for _ in range(5):
            with write_transaction(connection) as cursor:
                cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
                time.sleep(0.005)  # work inside the transaction, as a collection does
        connection.close()

    race([increments] * 6)  # any exception (such as "database is locked") fails the test

    assert count(probe) == 30


def test_a_write_outside_a_transaction_waits_for_the_open_one_to_commit(probe):
    holding = threading.Event()

    def long_transaction():
        write_and_hold(probe, holding, threading.Event(), seconds=0.2)

    def single_update():
        holding.wait(10)
        connection = probe()
        with connection.cursor() as cursor:  # autocommit: one statement
            cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
        connection.close()

    race([long_transaction, single_update])

    assert count(probe) == 101


def test_a_rolled_back_transaction_lets_the_next_writer_in(probe):
    connection = probe()
    with pytest.raises(ValueError), write_transaction(connection) as cursor:
        cursor.execute("UPDATE counter SET n = n + 100 WHERE id = 1")
        raise ValueError("the code inside the transaction failed")

    def write():
        other = probe()
        with write_transaction(other) as cursor:
            cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
        other.close()

    race([write])  # in a thread of its own: the lock must have been handed back
    assert count(probe) == 1


def test_a_closed_connection_gives_the_writer_lock_back(probe):
    connection = probe()
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE counter SET n = n + 100 WHERE id = 1")
    connection.close()  # a worker's connection dropped mid-transaction: rolled back

    def write():
        other = probe()
        with other.cursor() as cursor:
            cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
        other.close()

    race([write])
    assert count(probe) == 1


def test_a_writer_that_cannot_get_in_within_the_timeout_gets_database_is_locked(probe):
    connection = probe()
    connection.settings_dict["OPTIONS"]["timeout"] = 0.2
    holding, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=write_and_hold, args=(probe, holding, release))
    holder.start()
    try:
        assert holding.wait(10)
        with (
            pytest.raises(OperationalError, match="database is locked"),
            write_transaction(connection) as cursor,
        ):
            cursor.execute("UPDATE counter SET n = n + 10 WHERE id = 1")
    finally:
        release.set()
        holder.join(10)
    assert count(probe) == 100  # the holder's write, not the refused one
