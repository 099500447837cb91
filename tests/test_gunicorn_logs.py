"""The web process's own lines (gunicorn's master and workers, before Django is loaded) come in
the application's log format: gunicorn.conf.py."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n"


def gunicorn_lines(tmp_path, **env) -> list[str]:
    """What gunicorn started from the project's directory (as the Procfile does) prints from
    start to stop, serving a trivial app."""
    (tmp_path / "trivial_app.py").write_text(APP)
    environ = {key: value for key, value in os.environ.items() if key != "NERSTUDIO_LOG_FORMAT"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "trivial_app:app", "--bind", "127.0.0.1:0"],
        cwd=ROOT,
        env={**environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line.rstrip("\n"))
        if "Booting worker" in line or not line:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    return [line for line in lines + rest.splitlines() if line]


def test_gunicorn_logs_json_lines_in_production(tmp_path):
    lines = gunicorn_lines(tmp_path, DEBUG="false")

    records = [json.loads(line) for line in lines]  # every line is a JSON object
    messages = [(r["level"], r["logger"], r["message"]) for r in records]
    assert ("INFO", "gunicorn.error", "Shutting down: Master") in messages
    assert any(m.startswith("Booting worker with pid") for _, _, m in messages)
    assert all("time" in r for r in records)


@pytest.mark.parametrize(
    "env", [{"DEBUG": "true"}, {"DEBUG": "false", "NERSTUDIO_LOG_FORMAT": "text"}]
)
def test_gunicorn_keeps_readable_lines_in_development_or_when_asked(tmp_path, env):
    lines = gunicorn_lines(tmp_path, **env)

    assert any("Shutting down: Master" in line for line in lines)
    assert not any(line.startswith("{") for line in lines)
