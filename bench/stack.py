"""What the benches share: a free port, a fresh PostgreSQL database, Django in this process."""

import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recreate_database(database_url: str) -> None:
    """Drop (closing its connections) and create the database `database_url` names."""
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(database_url: str) -> None:
    """Django in this process on `database_url`, development settings, no broker."""
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nerstudio.settings.base")
    os.environ.setdefault("DEBUG", "true")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def healthy(url: str) -> bool:
    """Whether the server at `url` answers its liveness probe."""
    import requests

    try:
        return requests.get(f"{url}/healthz/", timeout=1).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


def wait_until_healthy(url: str, seconds: float, alive=lambda: None) -> bool:
    """Poll the liveness probe until it answers or `seconds` pass; `alive()` may raise when a
    process it watches has died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if healthy(url):
            return True
        alive()
        time.sleep(0.2)
    return False


def cpu_seconds(*, parents: set[int] = frozenset(), groups: set[int] = frozenset()) -> float:
    """User + system CPU so far of the processes whose parent is in `parents` or whose process
    group is in `groups` (from /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in parents or int(fields[2]) in groups:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def describe_machine() -> str:
    """The cores and a fixed CPU yardstick, printed by every bench so its figures can be read
    against the machine (shared VMs differ from one session to the next)."""
    started, total = time.perf_counter(), 0
    for i in range(10_000_000):
        total += i
    loop = time.perf_counter() - started
    loop_text = f"a 10-million-step Python loop (total += i) in {loop:.2f} s"
    return f"machine: {os.cpu_count()} cores; {loop_text}"
