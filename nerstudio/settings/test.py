"""Test settings: the shipped settings plus Google configured against a faked token endpoint.

Both sign-in paths are enabled here so one test run covers Google SSO and the development code
sign-in; tests/test_settings.py proves production settings can only be SSO.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghijklmnop")
os.environ.setdefault("EMAIL_URL", "smtp://localhost:25")  # replaced by locmem below
os.environ.setdefault("NERSTUDIO_ENCRYPTION_KEYS", "BkXREigNFE4jR97C8y5WNf6n5Ax5z7QOW_q5-4RcNec=")

from nerstudio.settings.base import *  # noqa: F403
from nerstudio.settings.base import SOCIALACCOUNT_PROVIDERS

SOCIALACCOUNT_PROVIDERS["google"]["APPS"] = [
    {"client_id": "test-client-id.apps.googleusercontent.com", "secret": "test-secret", "key": ""}
]
NERSTUDIO_DEV_SIGNIN = True
SOCIALACCOUNT_ONLY = False
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True
ACCOUNT_PREVENT_ENUMERATION = False  # as in the development sign-in

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["OPTIONS"].pop("pool", None)  # noqa: F405
ACCOUNT_RATE_LIMITS = False
NERSTUDIO_EMBEDDED_BEAT = False  # tests run reconcile() explicitly
if DATABASES["default"]["ENGINE"] == "lib.sqlite":  # noqa: F405
    # A file, not shared-cache memory: pipeline tests run tasks on threads beside a live server.
    import tempfile

    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"nerstudio-test-{os.getpid()}.sqlite3")
    }
# Production-like egress: tests that talk to servers on 127.0.0.1 turn the development allowance on
# themselves (tests/conftest.py `loopback_egress`).
NERSTUDIO_EGRESS_ALLOW_LOOPBACK = False
