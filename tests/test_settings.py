"""The shipped settings (`nerstudio.settings.base`) under production-like environments.

Each case imports the settings in a fresh interpreter with only the variables it names, so what is
proven is what production gets: SSO only whenever DEBUG is off, the development sign-in only with
DEBUG on and no Google credentials, secrets without defaults, and a clean `check --deploy`.
All the interpreters start together (module fixture) to keep the file fast.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent

# A developer's .env must not leak into these cases: the probe sees only the variables given.
ISOLATE = (
    "import environ; environ.Env.read_env = staticmethod(lambda *args, **kwargs: None)\n"
    "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'nerstudio.settings.base'\n"
)

# Reads the settings module only (fast); the `+ routes` variant also loads the apps and URLconf.
SETTINGS_PROBE = (
    ISOLATE
    + """
import json
from nerstudio.settings import base as s
values = {
    "DEBUG": s.DEBUG,
    "SOCIALACCOUNT_ONLY": s.SOCIALACCOUNT_ONLY,
    "ACCOUNT_LOGIN_BY_CODE_ENABLED": s.ACCOUNT_LOGIN_BY_CODE_ENABLED,
    "ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED": s.ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED,
    "NERSTUDIO_DEV_SIGNIN": s.NERSTUDIO_DEV_SIGNIN,
    "google_apps": s.SOCIALACCOUNT_PROVIDERS["google"]["APPS"],
}
"""
)
PRINT = "print(json.dumps(values))\n"
ROUTES = """
import django
from django.urls import Resolver404, resolve
django.setup()


def routed(path):
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


values["routes"] = {path: routed(path) for path in [
    "/accounts/login/", "/accounts/google/login/", "/accounts/google/login/callback/",
    "/accounts/login/code/", "/accounts/login/code/confirm/", "/accounts/signup/",
    "/accounts/password/reset/", "/accounts/password/change/",
]}
"""
PROBE = SETTINGS_PROBE + PRINT
PROBE_WITH_ROUTES = SETTINGS_PROBE + ROUTES + PRINT
CHECK_DEPLOY = (
    ISOLATE
    + """
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
"""
)

DEV_SIGNIN_ROUTES = ["/accounts/login/code/", "/accounts/login/code/confirm/", "/accounts/signup/"]
PASSWORD_ROUTES = ["/accounts/password/reset/", "/accounts/password/change/"]
GOOGLE = {
    "NERSTUDIO_GOOGLE_CLIENT_ID": "1234-prod.apps.googleusercontent.com",
    "NERSTUDIO_GOOGLE_CLIENT_SECRET": "GOCSPX-prod-secret",
}
PRODUCTION = {
    "SECRET_KEY": "prod-" + Fernet.generate_key().decode() + Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "studio.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://studio.example.com",
    "NERSTUDIO_PUBLIC_URL": "https://studio.example.com",
    "NERSTUDIO_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}  # DEBUG unset; DATABASE_URL is added per run (a throwaway SQLite file)


def without(env, key):
    return {k: v for k, v in env.items() if k != key}


# name: (code, environment)
CASES = {
    "prod-with-google": (PROBE, {**PRODUCTION, **GOOGLE}),
    "prod-without-google": (PROBE_WITH_ROUTES, PRODUCTION),
    "debug-false-without-google": (PROBE, {**PRODUCTION, "DEBUG": "false"}),
    "debug-0-with-google": (PROBE, {**PRODUCTION, **GOOGLE, "DEBUG": "0"}),
    "debug-without-google": (PROBE_WITH_ROUTES, {"DEBUG": "true"}),
    "debug-with-google": (PROBE, {"DEBUG": "true", **GOOGLE}),
    "no-SECRET_KEY": (PROBE, without(PRODUCTION, "SECRET_KEY")),
    "no-NERSTUDIO_ENCRYPTION_KEYS": (PROBE, without(PRODUCTION, "NERSTUDIO_ENCRYPTION_KEYS")),
    "no-EMAIL_URL": (PROBE, without(PRODUCTION, "EMAIL_URL")),
    "empty-SECRET_KEY": (PROBE, {**PRODUCTION, "SECRET_KEY": ""}),
    "check-deploy": (CHECK_DEPLOY, {**PRODUCTION, **GOOGLE}),
    "check-deploy-weak-key": (CHECK_DEPLOY, {**PRODUCTION, "SECRET_KEY": "django-insecure-short"}),
    "prod-loopback-allowance": (PROBE, {**PRODUCTION, "NERSTUDIO_EGRESS_ALLOW_LOOPBACK": "true"}),
    "debug-loopback-allowance": (PROBE, {"DEBUG": "true", "NERSTUDIO_EGRESS_ALLOW_LOOPBACK": "1"}),
    "prod-http-platform-endpoint": (
        PROBE,
        {**PRODUCTION, "NERSTUDIO_OPENAI_BASE_URL": "http://gateway.example/v1"},
    ),
    "prod-private-platform-endpoint": (
        PROBE,
        {**PRODUCTION, "NERSTUDIO_KIE_BASE_URL": "https://169.254.169.254"},
    ),
}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    """Start every case at once; `outcome(name)` waits for one: (returncode, stdout, stderr)."""
    base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    database = f"sqlite:///{tmp_path_factory.mktemp('settings') / 'prod.sqlite3'}"
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=BASE_DIR,
            env={**base, "PYTHONDONTWRITEBYTECODE": "1", "DATABASE_URL": database, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (code, env) in CASES.items()
    }
    finished = {}

    def wait(name):
        if name not in finished:
            out, err = running[name].communicate(timeout=60)
            finished[name] = (running[name].returncode, out, err)
        return finished[name]

    yield wait
    for process in running.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def loaded_settings(outcome, name):
    returncode, out, err = outcome(name)
    assert returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def last_error_line(outcome, name):
    returncode, _, err = outcome(name)
    assert returncode != 0
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "case",
    [
        "prod-with-google",
        "prod-without-google",
        "debug-false-without-google",
        "debug-0-with-google",
    ],
)
def test_production_is_google_only_whatever_the_credentials(outcome, case):
    loaded = loaded_settings(outcome, case)

    assert loaded["DEBUG"] is False
    assert loaded["SOCIALACCOUNT_ONLY"] is True
    assert loaded["ACCOUNT_LOGIN_BY_CODE_ENABLED"] is False
    assert loaded["ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED"] is False
    assert loaded["NERSTUDIO_DEV_SIGNIN"] is False
    google = "with-google" in case
    assert bool(loaded["google_apps"]) is google
    if google:
        assert loaded["google_apps"][0]["client_id"] == GOOGLE["NERSTUDIO_GOOGLE_CLIENT_ID"]


def test_production_routes_no_code_signup_or_password_views(outcome):
    routes = loaded_settings(outcome, "prod-without-google")["routes"]

    assert routes["/accounts/login/"] and routes["/accounts/google/login/callback/"]
    assert not any(routes[path] for path in DEV_SIGNIN_ROUTES + PASSWORD_ROUTES), routes


def test_debug_without_google_turns_the_development_sign_in_on(outcome):
    loaded = loaded_settings(outcome, "debug-without-google")

    assert loaded["DEBUG"] is True
    assert loaded["NERSTUDIO_DEV_SIGNIN"] is True
    assert loaded["SOCIALACCOUNT_ONLY"] is False
    assert loaded["ACCOUNT_LOGIN_BY_CODE_ENABLED"] is True
    assert loaded["google_apps"] == []
    assert all(loaded["routes"][path] for path in DEV_SIGNIN_ROUTES), loaded["routes"]


def test_debug_with_google_is_google_only(outcome):
    loaded = loaded_settings(outcome, "debug-with-google")

    assert loaded["NERSTUDIO_DEV_SIGNIN"] is False
    assert loaded["SOCIALACCOUNT_ONLY"] is True
    assert loaded["ACCOUNT_LOGIN_BY_CODE_ENABLED"] is False


@pytest.mark.parametrize("missing", ["SECRET_KEY", "NERSTUDIO_ENCRYPTION_KEYS", "EMAIL_URL"])
def test_production_refuses_to_start_without_a_secret(outcome, missing):
    error = last_error_line(outcome, f"no-{missing}")

    assert error.startswith("django.core.exceptions.ImproperlyConfigured")
    assert missing in error


def test_production_refuses_an_empty_secret_key(outcome):
    error = last_error_line(outcome, "empty-SECRET_KEY")

    assert "SECRET_KEY" in error


def test_the_deployment_checks_pass_in_a_production_like_environment(outcome):
    returncode, out, err = outcome("check-deploy")

    assert returncode == 0, out + err
    assert "System check identified no issues" in out


def test_the_deployment_checks_catch_a_weak_secret_key(outcome):
    """The check above can fail: the same run with a weak key is refused."""
    returncode, _, err = outcome("check-deploy-weak-key")

    assert returncode != 0
    assert "security.W009" in err


def test_production_refuses_the_loopback_allowance(outcome):
    assert "NERSTUDIO_EGRESS_ALLOW_LOOPBACK is a development setting" in last_error_line(
        outcome, "prod-loopback-allowance"
    )


def test_development_may_allow_loopback(outcome):
    assert loaded_settings(outcome, "debug-loopback-allowance")["DEBUG"] is True


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("prod-http-platform-endpoint", "Only https:// URLs are allowed."),
        ("prod-private-platform-endpoint", "private, loopback, link-local or reserved"),
    ],
)
def test_a_platform_endpoint_must_be_public_https(outcome, case, problem):
    assert problem in last_error_line(outcome, case)
