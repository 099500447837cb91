"""NER Studio settings, read from the environment.

With no environment at all (plus DEBUG=true, which `make run` sets) this is the embedded default:
SQLite, local media, an in-process channel layer and background tasks in the web process.
Production sets the variables documented in `.env.example`; secrets there have no default so a
missing one fails at start-up instead of at the first request.
"""

import base64
import hashlib
from pathlib import Path

import environ
from botocore.config import Config as BotoConfig
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from kombu import Queue

from lib.db_pool import check_connection

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

if DEBUG:
    SECRET_KEY = env("SECRET_KEY", default="django-insecure-embedded-development-key-only")
else:
    SECRET_KEY = env("SECRET_KEY")  # required in production: no default
    if not SECRET_KEY:
        raise ImproperlyConfigured("Set SECRET_KEY (required when DEBUG is false).")
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Where providers call us back; must be reachable from the internet in production.
NERSTUDIO_PUBLIC_URL = env("NERSTUDIO_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "workspace.apps.NerStudioAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "accounts",
    "orgs",
    "audit",
    "providers",
    "credits",
    "workspace",
    "library",
    "generation",
    "gallery",
]

MIDDLEWARE = [
    "lib.request_id.RequestIdMiddleware",  # first: every later log line names the request
    "lib.streaming.async_streaming_middleware",  # streamed bodies stay streamed (ASGI)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "orgs.middleware.OrganizationGoneMiddleware",
]

ROOT_URLCONF = "nerstudio.urls"
ASGI_APPLICATION = "nerstudio.asgi.application"
WSGI_APPLICATION = "nerstudio.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "orgs.context_processors.membership",
                "credits.context_processors.low_balance",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# psycopg's pool, per process (PostgreSQL only; NERSTUDIO_DB_POOL=false turns it off).
NERSTUDIO_DB_POOL_OPTIONS = {
    "min_size": env.int("NERSTUDIO_DB_POOL_MIN", default=1),
    "max_size": env.int("NERSTUDIO_DB_POOL_MAX", default=10),
    "timeout": 10,
    # While the database is away the pool retries connecting after 1, 2, 4, 8… s: after a 10 s
    # outage the next try came up to 5 s after the database was back, and requests waiting on it
    # failed. Giving a try up after 5 s starts the next one (on the next checkout) at 1 s again.
    "reconnect_timeout": 5,
    # A connection the database dropped is replaced when it is taken from the pool, not handed to
    # a task that then fails (bench/faults.py), and without a round trip per checkout.
    "check": check_connection,
}
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request may run on a different thread: a pool, not persistent connections.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if env.bool("NERSTUDIO_DB_POOL", default=True):
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = NERSTUDIO_DB_POOL_OPTIONS
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite, with writers queued in the process rather than in SQLite's busy handler.
    DATABASES["default"]["ENGINE"] = "lib.sqlite"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, Celery broker, channel layer ---------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    # Sessions are read from Redis (every request and websocket connect) and written through to
    # the database, which stays the durable copy: a cache miss or a flushed Redis reads it there.
    # Only with Redis: a per-process cache would keep a signed-out session alive in the others.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # channels-redis waits for a message with a blocking pop of 5 s; redis-py 8 reads
                # with a 5 s socket timeout by default, which cut that wait and closed idle
                # websockets (redis.exceptions.TimeoutError). Read for longer than the pop waits,
                # and still fail within seconds when Redis is gone.
                # driver_info=None: no CLIENT SETINFO per new connection, whose version lookup
                # (importlib.metadata, ~3 ms) ran on the event loop for every websocket connect.
                # max_connections: redis-py 8 pools hold 100 and then raise at once ("Too many
                # connections"); a burst of reconnects joins and leaves groups concurrently.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 15,
                        "socket_connect_timeout": 5,
                        "health_check_interval": 30,
                        "driver_info": None,
                        "max_connections": 1000,
                    }
                ],
                "prefix": "nerstudio",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Without a broker, tasks run on a thread pool inside the web process (see lib.tasks).
CELERY_BROKER_URL = REDIS_URL or None
# kombu's Redis transport, made to survive Redis going away under a waiting worker (lib.broker).
CELERY_BROKER_TRANSPORT = "lib.broker:Transport" if REDIS_URL else None
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Workers log through the root handler configured in LOGGING (with its redaction filter).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Queues by kind of work, each consumed by its own worker process (Procfile), so a backlog of one
# kind (the offline renderer's CPU, slow prompt writers) never delays another generation's
# submission. This is the one place a task's queue is decided; lib.tasks reads it too.
CELERY_TASK_DEFAULT_QUEUE = "default"
NERSTUDIO_QUEUES = ("default", "pipeline", "submit", "results", "render", "maintenance")
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in NERSTUDIO_QUEUES]
CELERY_TASK_ROUTES = {
    "generation.tasks.run_generation": {"queue": "pipeline"},  # reference descriptions, prompts
    "generation.tasks.submit_image": {"queue": "submit"},  # one provider call per image
    "generation.tasks.stage_products": {"queue": "submit"},  # product photos, while prompts run
    "generation.tasks.collect_result": {"queue": "results"},  # after callbacks and polls
    # The lowest of kombu's Redis priority steps (0, 3, 6, 9): taken when no result waits.
    "generation.tasks.add_thumbnail": {"queue": "results", "priority": 9},
    "providers.local.image.render_local_image": {"queue": "render"},  # the offline provider's CPU
    "generation.tasks.reconcile": {"queue": "maintenance"},  # beat
    "generation.tasks.add_missing_thumbnails": {"queue": "maintenance"},  # beat
    "providers.local.image.expire_local_results": {"queue": "maintenance"},  # beat
    # A deleted organization's rows (in rounds) and files, and the periodic safety net (beat).
    "workspace.tasks.purge_organization": {"queue": "maintenance"},
    "workspace.tasks.delete_stored_files": {"queue": "maintenance"},
    "workspace.tasks.purge_deleted_organizations": {"queue": "maintenance"},
}
# Celery workers' CPU priority (nice, 0–19): on a box shared with the web processes, pages go
# first (nerstudio/celery.py).
NERSTUDIO_WORKER_NICENESS = env.int("NERSTUDIO_WORKER_NICENESS", default=10)
# Without a broker each queue is a thread pool of its own in the web process (lib.tasks): this many
# threads for each of default, pipeline, submit and results (above NERSTUDIO_ORG_MAX_INFLIGHT, so
# one organization's hanging provider calls never take a whole pool), and these for the rest.
NERSTUDIO_EMBEDDED_WORKERS = env.int("NERSTUDIO_EMBEDDED_WORKERS", default=8)
NERSTUDIO_EMBEDDED_POOL_SIZES = {
    # Rendering is CPU work under the GIL: more threads than cores only make each render slower.
    "render": env.int("NERSTUDIO_EMBEDDED_RENDER_WORKERS", default=2),
    "maintenance": 1,
}

# --- Storage: local media by default, Cloudflare R2 / any S3 endpoint when a bucket is set --------
MEDIA_URL = "/media/"  # no route serves it: files go out through gallery/media.py only
MEDIA_ROOT = env.path("NERSTUDIO_MEDIA_ROOT", default=BASE_DIR / "media")
# Private media (gallery/media.py). Members' browsers get files through access-checked views;
# with a bucket these redirect to a presigned URL living this many seconds (also the browser's
# private cache lifetime without one).
NERSTUDIO_MEDIA_URL_EXPIRY = env.int("NERSTUDIO_MEDIA_URL_EXPIRY", default=300)
# Providers fetching product images, and the pipeline fetching the local provider's result, get
# URLs valid this many seconds: presigned with a bucket, signed by us without one. Longer than
# NERSTUDIO_IMAGE_DEADLINE_SECONDS, so a queued job can still read its inputs.
NERSTUDIO_FETCH_URL_EXPIRY = env.int("NERSTUDIO_FETCH_URL_EXPIRY", default=900)
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

NERSTUDIO_S3_BUCKET = env("NERSTUDIO_S3_BUCKET", default="")
if NERSTUDIO_S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": NERSTUDIO_S3_BUCKET,
            "endpoint_url": env("NERSTUDIO_S3_ENDPOINT_URL"),
            "access_key": env("NERSTUDIO_S3_ACCESS_KEY_ID"),
            "secret_key": env("NERSTUDIO_S3_SECRET_ACCESS_KEY"),
            "region_name": env("NERSTUDIO_S3_REGION", default="auto"),
            "default_acl": None,  # R2 implements no ACLs
            "querystring_auth": True,  # private bucket: presigned GET URLs
            "querystring_expire": env.int("NERSTUDIO_S3_URL_EXPIRY", default=3600),
            "file_overwrite": False,
            "client_config": BotoConfig(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                # boto3 >= 1.36 adds CRC32 trailers that R2 rejects.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Auth: Google SSO through allauth -------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
# allauth names the site in its emails; without django.contrib.sites that would be the request's
# host ("[127.0.0.1:8000] Sign-In Code"). The sites framework is left out on purpose: installing it
# now would make allauth look for a social-app/site table existing databases never created. The
# body's greeting says the same (templates/account/email/base_message.txt).
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[NER Studio] "
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True  # link Google to a matching account
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10

NERSTUDIO_GOOGLE_CLIENT_ID = env("NERSTUDIO_GOOGLE_CLIENT_ID", default="")
NERSTUDIO_GOOGLE_CLIENT_SECRET = env("NERSTUDIO_GOOGLE_CLIENT_SECRET", default="")
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": [
            {
                "client_id": NERSTUDIO_GOOGLE_CLIENT_ID,
                "secret": NERSTUDIO_GOOGLE_CLIENT_SECRET,
                "key": "",
            }
        ]
        if NERSTUDIO_GOOGLE_CLIENT_ID
        else [],
        "SCOPE": ["profile", "email"],
        "AUTH_PARAMS": {"access_type": "online", "prompt": "select_account"},
        "OAUTH_PKCE_ENABLED": True,
        "EMAIL_AUTHENTICATION": True,  # Google-verified email may sign in to a matching account
        "VERIFIED_EMAIL": False,  # trust Google's own email_verified claim, nothing more
    }
}


def signin_settings(*, debug: bool, google_configured: bool) -> dict:
    """Production is Google-only. The development sign-in (an emailed code, printed on the
    console) exists only with DEBUG on and no Google credentials, so production settings can never
    turn it on."""
    dev_signin = debug and not google_configured
    if dev_signin:
        return {
            "NERSTUDIO_DEV_SIGNIN": True,
            "SOCIALACCOUNT_ONLY": False,
            "ACCOUNT_LOGIN_BY_CODE_ENABLED": True,
            "ACCOUNT_EMAIL_VERIFICATION": "mandatory",
            "ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED": True,
            "SOCIALACCOUNT_EMAIL_VERIFICATION": "none",
            # Say "no account uses this email" (and offer to create one) rather than email an
            # "Unknown Account" notice without a code: this sign-in is local development only.
            "ACCOUNT_PREVENT_ENUMERATION": False,
        }
    return {
        "NERSTUDIO_DEV_SIGNIN": False,
        "SOCIALACCOUNT_ONLY": True,
        "ACCOUNT_LOGIN_BY_CODE_ENABLED": False,
        "ACCOUNT_EMAIL_VERIFICATION": "none",
        "ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED": False,
        "SOCIALACCOUNT_EMAIL_VERIFICATION": "none",
        "ACCOUNT_PREVENT_ENUMERATION": True,
    }


globals().update(signin_settings(debug=DEBUG, google_configured=bool(NERSTUDIO_GOOGLE_CLIENT_ID)))

# --- Organizations --------------------------------------------------------------------------------
NERSTUDIO_INVITATION_DAYS = env.int("NERSTUDIO_INVITATION_DAYS", default=7)

# --- Provider API keys at rest: Fernet keys, newest first; older ones only decrypt (rotation) -----
NERSTUDIO_ENCRYPTION_KEYS = env.list("NERSTUDIO_ENCRYPTION_KEYS", default=[])
if not NERSTUDIO_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set NERSTUDIO_ENCRYPTION_KEYS (comma-separated Fernet keys) to encrypt provider keys."
        )
    _derived = hashlib.sha256(f"nerstudio-dev-encryption:{SECRET_KEY}".encode()).digest()
    NERSTUDIO_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(_derived).decode()]

# --- AI providers ---------------------------------------------------------------------------------
# The platform's own accounts (operator-owned). Catalogue models use them; a key is only ever sent
# to its account's configured hosts (lib.egress). Base URLs may point at a gateway or a regional
# endpoint; with a key set, new organizations start with that vendor's catalogue models enabled,
# and without any key the offline local providers are active.
NERSTUDIO_PLATFORM_ACCOUNTS = {
    "kie": {
        "label": "kie.ai",
        "api_key": env("NERSTUDIO_KIE_API_KEY", default=""),
        "base_url": env("NERSTUDIO_KIE_BASE_URL", default="https://api.kie.ai").rstrip("/"),
        "upload_base_url": env(
            "NERSTUDIO_KIE_UPLOAD_BASE_URL", default="https://kieai.redpandaai.co"
        ).rstrip("/"),
        # kie.ai's webhook HMAC key (kie.ai settings): callbacks must then be signed and fresh.
        # The previous key is still accepted while set (rotation).
        "webhook_secret": env("NERSTUDIO_KIE_WEBHOOK_SECRET", default=""),
        "previous_webhook_secret": env("NERSTUDIO_KIE_WEBHOOK_SECRET_PREVIOUS", default=""),
    },
    "openai": {
        "label": "OpenAI",
        "api_key": env("NERSTUDIO_OPENAI_API_KEY", default=""),
        "base_url": env("NERSTUDIO_OPENAI_BASE_URL", default="https://api.openai.com/v1").rstrip(
            "/"
        ),
    },
    "gemini": {
        "label": "Google Gemini",
        "api_key": env("NERSTUDIO_GEMINI_API_KEY", default=""),
        "base_url": env(
            "NERSTUDIO_GEMINI_BASE_URL", default="https://generativelanguage.googleapis.com/v1beta"
        ).rstrip("/"),
    },
}
# After a provider's webhook secret is changed in the admin, the previous one is still accepted
# this long (callbacks already on their way).
NERSTUDIO_WEBHOOK_SECRET_GRACE_SECONDS = env.int(
    "NERSTUDIO_WEBHOOK_SECRET_GRACE_SECONDS", default=24 * 3600
)
# Development only: let outbound calls reach loopback (the local provider and fakes on 127.0.0.1)
# over http. Never private networks; refused outside DEBUG.
NERSTUDIO_EGRESS_ALLOW_LOOPBACK = env.bool("NERSTUDIO_EGRESS_ALLOW_LOOPBACK", default=False)
if NERSTUDIO_EGRESS_ALLOW_LOOPBACK and not DEBUG:
    raise ImproperlyConfigured("NERSTUDIO_EGRESS_ALLOW_LOOPBACK is a development setting (DEBUG).")


def _check_platform_urls(accounts: dict, *, allow_loopback: bool) -> None:
    from lib.egress import EgressRefused, check_url

    for account in accounts.values():
        for url in (account["base_url"], account.get("upload_base_url", "")):
            try:
                if url:
                    check_url(url, allow_loopback=allow_loopback, base=True)
            except EgressRefused as exc:
                raise ImproperlyConfigured(f"{account['label']} base URL {url!r}: {exc}") from None


_check_platform_urls(NERSTUDIO_PLATFORM_ACCOUNTS, allow_loopback=NERSTUDIO_EGRESS_ALLOW_LOOPBACK)
# Provider changes are pushed to every process (providers.changes); this is the safety net: how
# often a process re-checks an org's config_version while pushes are heard (seconds). Without them
# (no Redis, or Redis unreachable) it re-checks at least every 0.5 s.
NERSTUDIO_PROVIDER_REFRESH_SECONDS = env.float("NERSTUDIO_PROVIDER_REFRESH_SECONDS", default=5.0)
# Total time the prompt-writer fallback chain may take (PRD §6: under 30 s).
NERSTUDIO_LLM_CHAIN_DEADLINE = env.float("NERSTUDIO_LLM_CHAIN_DEADLINE", default=30.0)

# --- Generation -----------------------------------------------------------------------------------
# An image without a result this long after submission fails and its credits are released.
NERSTUDIO_IMAGE_DEADLINE_SECONDS = env.int("NERSTUDIO_IMAGE_DEADLINE_SECONDS", default=600)
# Poll for a result no callback reported after the provider's observed median time to a result
# plus a margin, within these bounds (then backing off to once a minute); the upper bound is also
# the first poll before anything was observed.
NERSTUDIO_POLL_MIN_SECONDS = env.int("NERSTUDIO_POLL_MIN_SECONDS", default=5)
NERSTUDIO_POLL_AFTER_SECONDS = env.int("NERSTUDIO_POLL_AFTER_SECONDS", default=20)
# Under overload (many results late at once) polls add to the load: at most this many per image
# model per reconcile round (every 5 s), the longest-overdue first; the rest wait for a later round.
NERSTUDIO_POLLS_PER_ROUND = env.int("NERSTUDIO_POLLS_PER_ROUND", default=20)
# A generation stuck before image submission this long is resumed (its worker died).
NERSTUDIO_STALLED_AFTER_SECONDS = env.int("NERSTUDIO_STALLED_AFTER_SECONDS", default=120)
# Fair share: provider calls one organization may have in flight at once (keep it well below the
# worker count), and how long a slot a crashed worker never returned stays taken.
NERSTUDIO_ORG_MAX_INFLIGHT = env.int("NERSTUDIO_ORG_MAX_INFLIGHT", default=4)
NERSTUDIO_ORG_SLOT_LEASE_SECONDS = env.int("NERSTUDIO_ORG_SLOT_LEASE_SECONDS", default=300)
# Generate requests allowed per minute, per member and per organization.
NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE = env.int(
    "NERSTUDIO_GENERATE_PER_MEMBER_PER_MINUTE", default=10
)
NERSTUDIO_GENERATE_PER_ORG_PER_MINUTE = env.int("NERSTUDIO_GENERATE_PER_ORG_PER_MINUTE", default=30)
# Uploaded megapixels decoded per minute (library uploads and Generate alike), per member and per
# organization: decoding is the costly part of an upload, and a small file can hold many pixels.
NERSTUDIO_UPLOAD_MEGAPIXELS_PER_MEMBER_PER_MINUTE = env.int(
    "NERSTUDIO_UPLOAD_MEGAPIXELS_PER_MEMBER_PER_MINUTE", default=400
)
NERSTUDIO_UPLOAD_MEGAPIXELS_PER_ORG_PER_MINUTE = env.int(
    "NERSTUDIO_UPLOAD_MEGAPIXELS_PER_ORG_PER_MINUTE", default=3000
)
NERSTUDIO_THUMBNAIL_SIDE = 384
NERSTUDIO_MAX_IMAGES_PER_GENERATION = env.int("NERSTUDIO_MAX_IMAGES_PER_GENERATION", default=8)
# Uploads: per-file bytes and pixels (read from the header; see library/uploads.py). Decoding
# memory is bounded per image: a JPEG above MAX_DECODED_PIXELS is decoded at 1/2, 1/4 or 1/8 scale;
# PNG cannot be, so it is limited to MAX_DECODED_PIXELS (4 bytes each); WebP decodes through libwebp
# at about 16 bytes per pixel, hence its lower limit. Stored copies are re-encoded with their long
# side at most MAX_SIDE (providers use no more).
NERSTUDIO_UPLOAD_MAX_BYTES = env.int("NERSTUDIO_UPLOAD_MAX_BYTES", default=10 * 1024 * 1024)
NERSTUDIO_UPLOAD_MAX_PIXELS = env.int("NERSTUDIO_UPLOAD_MAX_PIXELS", default=40_000_000)
NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS = env.int(
    "NERSTUDIO_UPLOAD_MAX_DECODED_PIXELS", default=4096 * 4096
)
NERSTUDIO_UPLOAD_MAX_WEBP_PIXELS = env.int("NERSTUDIO_UPLOAD_MAX_WEBP_PIXELS", default=2048 * 2048)
NERSTUDIO_UPLOAD_MAX_SIDE = env.int("NERSTUDIO_UPLOAD_MAX_SIDE", default=4096)
# Results downloaded from providers are capped in size and time (and go through lib.egress).
NERSTUDIO_RESULT_MAX_BYTES = env.int("NERSTUDIO_RESULT_MAX_BYTES", default=40 * 1024 * 1024)
# Run the reconciliation loop inside the web process when there is no broker (embedded mode).
NERSTUDIO_EMBEDDED_BEAT = env.bool("NERSTUDIO_EMBEDDED_BEAT", default=not REDIS_URL)

CELERY_BEAT_SCHEDULE = {
    # Often enough for a poll due a few seconds after submission (first polls follow the
    # provider's observed latency); each run is a few indexed queries.
    # A round the maintenance worker could not start within two periods is dropped, not piled up.
    "reconcile-images": {
        "task": "generation.tasks.reconcile",
        "schedule": 5.0,
        "options": {"expires": 10.0},
    },
    # Thumbnails a stopped worker left unmade (generation.pipeline.results).
    "add-missing-thumbnails": {
        "task": "generation.tasks.add_missing_thumbnails",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    # The offline renderer's results, kept a while as a remote provider keeps its own.
    "expire-local-results": {
        "task": "providers.local.image.expire_local_results",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
    # A deleted organization whose background removal was interrupted is taken up again.
    "purge-deleted-organizations": {
        "task": "workspace.tasks.purge_deleted_organizations",
        "schedule": 600.0,
        "options": {"expires": 600.0},
    },
}

# --- Email ----------------------------------------------------------------------------------------
# Development prints email on the console; production must name a real mail server.
_email = (
    env.email_url("EMAIL_URL", default="consolemail://") if DEBUG else env.email_url("EMAIL_URL")
)
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": {
            key: value
            for key, value in {
                "host": _email.get("EMAIL_HOST"),
                "port": _email.get("EMAIL_PORT"),
                "username": _email.get("EMAIL_HOST_USER"),
                "password": _email.get("EMAIL_HOST_PASSWORD"),
                "use_tls": _email.get("EMAIL_USE_TLS"),
                "use_ssl": _email.get("EMAIL_USE_SSL"),
                "timeout": 10,
            }.items()
            if value is not None and value != ""
        }
        if "smtp" in _email["EMAIL_BACKEND"]
        else {},
    }
}
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="NER Studio <noreply@nerstudio.local>")
# Platform operators' emails: told when an organization requests credits.
ADMINS = env.list("NERSTUDIO_ADMINS", default=[])
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security -------------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"


def content_security_policy(*, public_url: str, media_endpoint: str, google: bool) -> dict:
    """One policy for development and production alike, so a violation shows up in development
    (and fails the browser tests) before it reaches users. Scripts and styles come from our own
    static files; an inline one needs the request's nonce. Images may redirect to the media
    bucket (presigned URLs); Google avatars come from Google; websockets go back to this host."""
    from urllib.parse import urlsplit

    def origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""

    public = urlsplit(public_url)
    sockets = [f"{'wss' if public.scheme == 'https' else 'ws'}://{public.netloc}"]
    return {
        "default-src": [CSP.SELF],
        "script-src": [CSP.SELF, CSP.NONCE],
        "style-src": [CSP.SELF, CSP.NONCE],
        "img-src": [
            CSP.SELF,
            "data:",
            "blob:",  # Generate's previews of the chosen files
            "https://*.googleusercontent.com",  # avatars from Google sign-in
            *filter(None, [origin(media_endpoint)]),
        ],
        "connect-src": [CSP.SELF, *sockets],  # 'self' covers same-host ws(s) in CSP 3 browsers
        "object-src": [CSP.NONE],
        "base-uri": [CSP.NONE],
        "frame-ancestors": [CSP.NONE],
        # Chromium checks form-action on the redirect after a POST too: Google's sign-in starts
        # with a POST to allauth that redirects to Google.
        "form-action": [CSP.SELF, *(["https://accounts.google.com"] if google else [])],
    }


SECURE_CSP = content_security_policy(
    public_url=NERSTUDIO_PUBLIC_URL,
    media_endpoint=env("NERSTUDIO_S3_ENDPOINT_URL", default="") if NERSTUDIO_S3_BUCKET else "",
    google=bool(NERSTUDIO_GOOGLE_CLIENT_ID),
)
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("NERSTUDIO_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz/$", r"^readyz/$"]  # probes speak plain HTTP
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("NERSTUDIO_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("NERSTUDIO_HSTS_PRELOAD", default=True)

# Uploads: the request body cap, enforced by lib.http_limits (ASGI) before Django reads a byte;
# per-file limits are checked by the upload forms. The Generate page takes at most 8 files (4
# product photos + 4 references, the models' default limits) of NERSTUDIO_UPLOAD_MAX_BYTES each,
# plus room for the form fields; provider callbacks are small JSON; no other route takes files, so
# it gets Django's own non-file limit (a larger body could only be refused by Django later).
NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES = env.int(
    "NERSTUDIO_UPLOAD_MAX_REQUEST_BYTES", default=8 * NERSTUDIO_UPLOAD_MAX_BYTES + 1024 * 1024
)
NERSTUDIO_CALLBACK_MAX_REQUEST_BYTES = 256 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # non-file fields (Django's default, 2.5 MB)
NERSTUDIO_MAX_REQUEST_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE  # every other route
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024  # larger files (and ASGI bodies) spool to disk
# Files per request: the upload fields take 16 each (library.forms.MAX_FILES) and say so; beyond
# this Django refuses the request (400) before any file is looked at.
DATA_UPLOAD_MAX_NUMBER_FILES = 40

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Operations: probes and logs ------------------------------------------------------------------
# /readyz/ (workspace/health.py): each check's time limit in seconds, and the age in seconds after
# which the workers' heartbeat (written as they finish tasks; reconcile runs every 5 s) is stale.
NERSTUDIO_READYZ_TIMEOUT = env.float("NERSTUDIO_READYZ_TIMEOUT", default=2.0)
NERSTUDIO_HEARTBEAT_MAX_AGE = env.int("NERSTUDIO_HEARTBEAT_MAX_AGE", default=60)
# Who sees /readyz/'s details (`Authorization: Bearer <token>`; superusers and DEBUG always do),
# and how many seconds a verdict is reused (a flood of probes runs the checks once per interval).
NERSTUDIO_READYZ_TOKEN = env.str("NERSTUDIO_READYZ_TOKEN", default="")
NERSTUDIO_READYZ_REUSE = env.float("NERSTUDIO_READYZ_REUSE", default=1.0)
# "json": one JSON object per line, for a log pipeline (the production default); "text": readable
# lines (the default with DEBUG on). Both carry the request id and generation id where known.
NERSTUDIO_LOG_FORMAT = env.str("NERSTUDIO_LOG_FORMAT", default="text" if DEBUG else "json")
if NERSTUDIO_LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("NERSTUDIO_LOG_FORMAT must be json or text.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "lib.log_json.JsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s"},
    },
    # Callback tokens never reach the logs (lib/log_redaction.py).
    "filters": {
        "redact_secrets": {"()": "lib.log_redaction.RedactSecrets"},
        # request_id, generation_id, image_id, task on every record (lib/request_id.py).
        "log_context": {"()": "lib.request_id.LogContext"},
        # Reconciliation runs every few seconds: it logs only when it did something.
        "quiet_periodic_tasks": {"()": "lib.log_filters.QuietPeriodicTasks"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": NERSTUDIO_LOG_FORMAT,
            "filters": ["log_context", "redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per request with its route, status and time (lib.request_id); runserver prints
        # its own in development.
        "nerstudio.access": {"level": "WARNING" if DEBUG else "INFO"},
        "django.channels.server": {"propagate": False},  # daphne prints its own access log
        # Under gunicorn, uvicorn prints plain-text lines for every websocket ("connection open",
        # "[accepted]", "connection closed"); the JSON access line (lib.request_id.log_socket)
        # says the same once. Its warnings and errors still come, as JSON.
        "uvicorn.error": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "celery.beat": {"filters": ["quiet_periodic_tasks"]},
        "celery.worker.strategy": {"filters": ["quiet_periodic_tasks"]},  # "Task … received"
        # Without a broker tasks run in the web process: a line per succeeded task would bury the
        # sign-in codes `make run` prints; failures still show.
        "celery.app.trace": {
            "filters": ["quiet_periodic_tasks"],
            **({} if REDIS_URL else {"level": "WARNING"}),
        },
    },
}
