"""Real-browser tests: the real server (runserver + daphne) in a subprocess in the embedded
default mode (SQLite, in-memory channel layer, background tasks on the web process's threads,
local providers), driven by Debian's Chromium through Playwright's sync API."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's async-safety check would
# otherwise refuse any ORM use here. Only the e2e tests set this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@demo.nerstudio.test"
SERVER_START_SECONDS = 60
SIGN_IN_CODE = re.compile(r"^([A-Z0-9]{4}-[A-Z0-9]{4})$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "server.log"
        self.env = self._env()
        self.process: subprocess.Popen | None = None

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NERSTUDIO_", "DJANGO_"))}
        for name in ("REDIS_URL", "DATABASE_URL", "EMAIL_URL", "SECRET_KEY", "DEBUG"):
            env.pop(name, None)
        env.update(
            DJANGO_SETTINGS_MODULE="nerstudio.settings.base",
            DEBUG="true",
            REDIS_URL="",  # the embedded default; empty also beats a REDIS_URL in .env
            DATABASE_URL=f"sqlite:///{self.tmp / 'e2e.sqlite3'}",
            NERSTUDIO_MEDIA_ROOT=str(self.tmp / "media"),
            NERSTUDIO_PUBLIC_URL=self.url,
            NERSTUDIO_EGRESS_ALLOW_LOOPBACK="true",
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def sign_in_code(self, email: str, after: int, timeout: float = 20) -> str:
        """The sign-in code the server emailed `email` (the console mailer prints it) after log
        offset `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")[after:]
            if f"To: {email}" in text and (codes := SIGN_IN_CODE.findall(text)):
                return codes[-1]
            time.sleep(0.1)
        raise RuntimeError(f"No sign-in code for {email} in the server log:\n{self.log_text()}")

    def log_size(self) -> int:
        return len(self.log_path.read_text(errors="replace")) if self.log_path.exists() else 0

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v0")
        self.manage("seed_demo")
        self.manage("topup_credits", "Demo Studio", "500", "--note", "e2e")
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The server exited:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz/", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.25)
        raise RuntimeError(
            f"The server did not answer in {SERVER_START_SECONDS} s:\n{self.log_text()}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process:
            self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def e2e_server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    server = Server(tmp_path_factory.mktemp("e2e"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")  # Playwright's sync API runs an event loop until it stops:
def browser():  # stop it with the e2e module, before any asyncio test elsewhere runs
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def admin_page(e2e_server, browser):
    """A browser tab signed in as the demo organization's admin, through the real development
    sign-in: the email form, the code the server "emails" (prints), the confirmation."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{e2e_server.url}/accounts/login/")
    page.fill("input[name=email]", ADMIN_EMAIL)
    before = e2e_server.log_size()
    page.get_by_role("button", name="Email me a sign-in code").click()
    page.fill("input[name=code]", e2e_server.sign_in_code(ADMIN_EMAIL, before))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{e2e_server.url}/dashboard/")
    yield page
    context.close()
