"""Real-browser tests: the real server (runserver + daphne) in a subprocess in the embedded
default mode (SQLite, in-memory channel layer, background tasks on the web process's threads,
local providers), driven by Debian's Chromium through Playwright's sync API.

Every browser context is watched for Content Security Policy violations: a test during which any
page reported one fails. A failing test leaves a screenshot of each page it had open in
test-artifacts/e2e/ (the path is printed with the failure)."""

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
ARTIFACTS = ROOT / "test-artifacts" / "e2e"

# Reports each violation to Python through an exposed binding, so nothing is lost when the page
# navigates away right after it.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile || e.documentURI}:${e.lineNumber}`;
  window.e2eReportCsp(`${e.effectiveDirective} refused ${e.blockedURI || "inline"} at ${where}` +
    (e.sample ? ` (${e.sample})` : ""));
}, true);
"""


class WatchedBrowser:
    """The browser, whose every new context records CSP violations: `securitypolicyviolation`
    events in its pages and console errors that mention the Content Security Policy (which also
    covers what the event does not reach)."""

    def __init__(self, browser):
        self._browser = browser
        self.contexts = []
        self.violations: list[str] = []

    def __getattr__(self, name):
        return getattr(self._browser, name)

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        context.expose_binding("e2eReportCsp", self._reported)
        context.add_init_script(CSP_LISTENER)
        context.on("console", self._console)
        self.contexts.append(context)
        return context

    def _reported(self, source, text: str) -> None:
        self.violations.append(f"{source['page'].url}: {text}")

    def _console(self, message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.violations.append(f"{message.page.url if message.page else ''}: {message.text}")

    def open_pages(self) -> list:
        pages = []
        for context in self.contexts:
            try:
                pages.extend(page for page in context.pages if not page.is_closed())
            except Exception:  # a closed context
                continue
        return pages

    def take_violations(self) -> list[str]:
        for page in self.open_pages():  # let reports of what already happened arrive (they are
            try:  # queued as tasks: wait one out)
                page.evaluate("() => new Promise((resolve) => setTimeout(resolve, 20))")
            except Exception:  # a page navigating or closing
                continue
        taken, self.violations[:] = list(self.violations), []
        return taken


_watched: WatchedBrowser | None = None


def _fail_on_violations(when: str) -> None:
    if _watched and (violations := _watched.take_violations()):
        pytest.fail(
            f"Content Security Policy violations {when}:\n" + "\n".join(violations), pytrace=False
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if "browser" in getattr(item, "fixturenames", ()):
        _fail_on_violations("during the test")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and report.when == "call" and _watched:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        paths = []
        for number, page in enumerate(_watched.open_pages(), start=1):
            path = ARTIFACTS / f"{item.name}-{number}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
            except Exception:  # a page that cannot be captured
                continue
            paths.append(str(path))
        if paths:
            report.sections.append(("e2e screenshots", "\n".join(paths)))
            print(f"\nScreenshots of {item.nodeid}: {', '.join(paths)}")
    if report.failed and report.when == "call" and (server := item.funcargs.get("e2e_server")):
        report.sections.append(("e2e server log (last 5,000 characters)", server.log_text()))
    return report


@pytest.fixture(autouse=True)
def _no_csp_violations_after(request):
    """Violations reported while fixtures tear down (a page's last navigation) fail the test too."""
    yield
    if "browser" in request.fixturenames:
        _fail_on_violations("while the test finished")


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
        self.admin_state: dict | None = None  # the signed-in admin's cookies (admin_page)

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

    def shell(self, code: str) -> str:
        """Run Python in a Django shell on the server's database (set-up a test needs that no page
        offers, such as a platform operator's catalogue entry); returns what it printed."""
        return self.manage("shell", "--no-imports", "-c", code)

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
        global _watched
        _watched = WatchedBrowser(browser)
        try:
            yield _watched
        finally:
            _watched = None
            browser.close()


@pytest.fixture
def admin_page(e2e_server, browser):
    """A browser tab signed in as the demo organization's admin, on the dashboard. The first one
    signs in through the real development sign-in (the email form, the code the server "emails"
    (prints), the confirmation); later ones reuse its session, as a returning browser would:
    allauth allows only a few codes a minute per address."""
    state = e2e_server.admin_state
    context = browser.new_context(viewport={"width": 1280, "height": 900}, storage_state=state)
    page = context.new_page()
    page.set_default_timeout(60_000)
    if state:
        page.goto(f"{e2e_server.url}/dashboard/")
    else:
        page.goto(f"{e2e_server.url}/accounts/login/")
        page.fill("input[name=email]", ADMIN_EMAIL)
        before = e2e_server.log_size()
        page.get_by_role("button", name="Email me a sign-in code").click()
        page.fill("input[name=code]", e2e_server.sign_in_code(ADMIN_EMAIL, before))
        page.get_by_role("button", name="Confirm").click()
        page.wait_for_url(f"{e2e_server.url}/dashboard/")
        e2e_server.admin_state = context.storage_state()
    yield page
    context.close()
