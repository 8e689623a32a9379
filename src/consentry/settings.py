"""Settings, read from the environment with defaults that are safe for the demo.

Every value a deployment needs to change is an environment variable:

- ``DATABASE_URL``: defaults to an embedded SQLite file under ``CONSENTRY_DATA_DIR``.
- ``SECRET_KEY``: refused when left at the placeholder while ``DEBUG`` is off.
- ``CONSENTRY_ENCRYPTION_KEYS``: comma-separated Fernet keys, newest first
  (the first encrypts, all decrypt: rotation without downtime).
- ``CONSENTRY_PROVIDER``: ``sandbox`` (default; nothing leaves the machine).
- ``CONSENTRY_PUBLIC_URL``: the URL Twilio calls us at, used to check its
  request signatures when we sit behind a proxy.

One file, as Django expects, grouped by concern with each setting explained where it is read.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import dj_database_url

PLACEHOLDER_SECRET = "consentry-insecure-placeholder-change-me"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DATA_DIR = Path(os.environ.get("CONSENTRY_DATA_DIR", Path.cwd() / "var")).resolve()

DEBUG = _env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", PLACEHOLDER_SECRET)
DEMO_MODE = _env_bool("CONSENTRY_DEMO", False)
# A placeholder secret or a missing encryption key is refused by the system
# checks in consentry/checks.py, which every serving command runs first.


def _derived_fernet_key(secret: str) -> str:
    # Only for demo/debug: a key derived from the (placeholder) secret so the
    # demo runs with no configuration. Production sets CONSENTRY_ENCRYPTION_KEYS.
    return base64.urlsafe_b64encode(hashlib.sha256(("fernet:" + secret).encode()).digest()).decode()


ENCRYPTION_KEYS_CONFIGURED = [
    k.strip() for k in os.environ.get("CONSENTRY_ENCRYPTION_KEYS", "").split(",") if k.strip()
]
ENCRYPTION_KEYS = ENCRYPTION_KEYS_CONFIGURED or [_derived_fernet_key(SECRET_KEY)]

ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin.apps.SimpleAdminConfig",  # one admin site, ours (consentry/admin.py)
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "ninja",
    "django_htmx",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "consentry.patients",
    "consentry.consent",
    "consentry.messaging",
    "consentry.keywords",
    "consentry.conversations",
    "consentry.providers",
    "consentry.accounts",
    "consentry.events",
    "consentry.web",
    "consentry",
]

MIDDLEWARE = [
    "consentry.web.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Views that take posts from elsewhere say so (webhooks, one-click
    # unsubscribe, the token-authenticated API); every other form needs the token.
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "consentry.web.middleware.StaffSessionMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last of the authentication steps: a locked-out sign-in answers before any view runs.
    "axes.middleware.AxesMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "consentry.web.middleware.CSPMiddleware",
    "consentry.web.metrics.WebhookTimingMiddleware",
]

ROOT_URLCONF = "consentry.urls"
WSGI_APPLICATION = "consentry.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "consentry.web.demo.banner",
            ]
        },
    }
]

_default_sqlite = f"sqlite:///{DATA_DIR / 'consentry.sqlite3'}"
# Connections are kept between requests and between the worker's polls (checked
# before reuse): opening one per poll costs a PostgreSQL log-in, or on SQLite the
# set-up pragmas and a WAL checkpoint at every close.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", _default_sqlite),
        conn_max_age=int(os.environ.get("CONSENTRY_DB_CONN_MAX_AGE", 600)),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at
    # BEGIN so the web process and the worker queue on busy_timeout instead of
    # failing with "database is locked" halfway through a transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        # A 64 MB page cache (the default is 2 MB) keeps a practice's patients,
        # contact points and consent in memory while a broadcast is planned.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
            "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; PRAGMA mmap_size=1073741824;"
        ),
    }
    DATABASES["default"]["TEST"] = (
        {"NAME": os.environ.get("CONSENTRY_TEST_SQLITE", "")} if os.environ.get("CONSENTRY_TEST_SQLITE") else {}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
# Serve app static files (the API docs' Swagger UI) straight from the packages.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Requests larger than this are refused with 413 before any view runs.
MAX_REQUEST_BYTES = int(os.environ.get("CONSENTRY_MAX_REQUEST_BYTES", 5 * 1024 * 1024))
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES

CONSENTRY_PROVIDER = os.environ.get("CONSENTRY_PROVIDER", "sandbox")
CONSENTRY_PUBLIC_URL = os.environ.get("CONSENTRY_PUBLIC_URL", "").rstrip("/")
CONSENTRY_TWILIO_API_BASE = os.environ.get("CONSENTRY_TWILIO_API_BASE", "https://api.twilio.com")
# Seconds to wait for a provider's answer before the outcome counts as unknown.
CONSENTRY_PROVIDER_TIMEOUT = float(os.environ.get("CONSENTRY_PROVIDER_TIMEOUT", 15))
# Transient provider errors (timeouts before connecting, 429, 5xx) are retried
# with exponential backoff and full jitter, at most this many hand-overs in all.
CONSENTRY_RETRY_MAX_ATTEMPTS = int(os.environ.get("CONSENTRY_RETRY_MAX_ATTEMPTS", 5))
CONSENTRY_RETRY_BASE_SECONDS = float(os.environ.get("CONSENTRY_RETRY_BASE_SECONDS", 30))
CONSENTRY_RETRY_MAX_SECONDS = float(os.environ.get("CONSENTRY_RETRY_MAX_SECONDS", 3600))
# A delivery handed over with no answer (a crash, a timeout) fails as
# outcome_unknown after this long unless a status callback settles it first;
# a due delivery its task never handed over (the worker was killed) is then
# dispatched again.
CONSENTRY_OUTCOME_TIMEOUT_SECONDS = float(os.environ.get("CONSENTRY_OUTCOME_TIMEOUT_SECONDS", 3600))
# Recovery (messaging/recovery.py): every worker beats every CONSENTRY_BEAT_SECONDS
# and sweeps every CONSENTRY_SWEEP_SECONDS. A task whose worker has not beaten
# for CONSENTRY_WORKER_DEAD_SECONDS runs again (failed once CONSENTRY_TASK_MAX_CLAIMS
# workers died on it); a due delivery no task has handed over for
# CONSENTRY_REDISPATCH_AFTER_SECONDS is dispatched again.
CONSENTRY_BEAT_SECONDS = float(os.environ.get("CONSENTRY_BEAT_SECONDS", 5))
CONSENTRY_SWEEP_SECONDS = float(os.environ.get("CONSENTRY_SWEEP_SECONDS", 30))
CONSENTRY_WORKER_DEAD_SECONDS = float(os.environ.get("CONSENTRY_WORKER_DEAD_SECONDS", 60))
CONSENTRY_TASK_MAX_CLAIMS = int(os.environ.get("CONSENTRY_TASK_MAX_CLAIMS", 3))
CONSENTRY_REDISPATCH_AFTER_SECONDS = float(os.environ.get("CONSENTRY_REDISPATCH_AFTER_SECONDS", 300))
# Deliveries handed to one dispatch task; planning a broadcast enqueues one task per chunk.
CONSENTRY_DISPATCH_BATCH = int(os.environ.get("CONSENTRY_DISPATCH_BATCH", 500))

# --- HTTPS behind a TLS proxy -------------------------------------------------
# `consentry serve` speaks plain HTTP: in production a proxy (nginx, a load
# balancer) terminates TLS in front of it and sets X-Forwarded-Proto. When the
# public URL is https, that header is believed from the proxy's address only
# (CONSENTRY_TRUSTED_PROXY; the server drops it from anyone else),
# plain-HTTP requests are redirected (health and metrics probes on loopback
# excepted), and browsers are told to use HTTPS only (HSTS).
_HTTPS = CONSENTRY_PUBLIC_URL.startswith("https://") and not (DEBUG or DEMO_MODE)
# /metrics answers with this bearer token; unset, only direct requests from this machine.
CONSENTRY_METRICS_TOKEN = os.environ.get("CONSENTRY_METRICS_TOKEN", "")
CONSENTRY_TRUSTED_PROXY = os.environ.get("CONSENTRY_TRUSTED_PROXY", "127.0.0.1" if _HTTPS else "")
if _HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _env_bool("CONSENTRY_SSL_REDIRECT", _HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = int(os.environ.get("CONSENTRY_HSTS_SECONDS", 31536000 if _HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("CONSENTRY_HSTS_INCLUDE_SUBDOMAINS", True)
# Preloading is a commitment made by submitting the domain to the browsers'
# list; the operator opts in (then Django's reminder, security.W021, is moot).
SECURE_HSTS_PRELOAD = _env_bool("CONSENTRY_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W021", "axes.W006"]
SESSION_COOKIE_SECURE = not (DEBUG or DEMO_MODE)
CSRF_COOKIE_SECURE = not (DEBUG or DEMO_MODE)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Staff accounts -------------------------------------------------------------
# Staff sign in with their email address and a password hashed with Argon2 (older hashes are
# upgraded at the next sign-in). A session ends after CONSENTRY_SESSION_IDLE_MINUTES without a
# request made by the person (the pages' own refreshes do not count) and when the browser closes.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out sign-in before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
SESSION_IDLE_SECONDS = int(float(os.environ.get("CONSENTRY_SESSION_IDLE_MINUTES", 15)) * 60)
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
LOGIN_URL = "staff-sign-in"
LOGIN_REDIRECT_URL = "index"
# Set-password links (invitations, resets) work once, and for at most a day.
PASSWORD_RESET_TIMEOUT = 24 * 3600
# Sign-in lockout (django-axes): after CONSENTRY_SIGNIN_FAILURES failed attempts for one account,
# its sign-in is refused for CONSENTRY_SIGNIN_LOCKOUT_MINUTES, whatever address they come from.
AXES_FAILURE_LIMIT = int(os.environ.get("CONSENTRY_SIGNIN_FAILURES", 5))
AXES_COOLOFF_TIME = float(os.environ.get("CONSENTRY_SIGNIN_LOCKOUT_MINUTES", 15)) / 60  # hours
# Per account, not per address: a practice's front desk shares one public address, and one
# person's typos must not lock out the whole office (hence axes.W006 is silenced).
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "staff/locked.html"
AXES_VERBOSE = False
AXES_USERNAME_CALLABLE = "consentry.web.staff.accounts.axes_username"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy on every page (django-csp): scripts, styles and
# everything else only from this origin; no inline script, no framing, no
# plugins, forms post only here. Email previews in the sandbox are srcdoc
# frames with no permissions at all.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "consentry": {"handlers": ["console"], "level": os.environ.get("CONSENTRY_LOG_LEVEL", "INFO")},
        "django_tasks_db": {"handlers": ["console"], "level": "WARNING"},
    },
}

# Email. The "smtp" provider talks to this SMTP server through Django's SMTP
# backend, configured here (EMAIL_BACKEND and EMAIL_HOST play no part).
CONSENTRY_SMTP_HOST = os.environ.get("CONSENTRY_SMTP_HOST", "127.0.0.1")
CONSENTRY_SMTP_PORT = int(os.environ.get("CONSENTRY_SMTP_PORT", 25))
CONSENTRY_SMTP_USER = os.environ.get("CONSENTRY_SMTP_USER", "")
CONSENTRY_SMTP_PASSWORD = os.environ.get("CONSENTRY_SMTP_PASSWORD", "")
CONSENTRY_SMTP_USE_TLS = _env_bool("CONSENTRY_SMTP_USE_TLS", False)  # STARTTLS (port 587)
CONSENTRY_SMTP_USE_SSL = _env_bool("CONSENTRY_SMTP_USE_SSL", False)  # TLS from the start (port 465)
# Seconds to reach the SMTP server or the ESP's API (and, for SMTP, to wait for each reply).
CONSENTRY_EMAIL_TIMEOUT = float(os.environ.get("CONSENTRY_EMAIL_TIMEOUT", 10))
# The domain in the Message-ID of email sent by SMTP (the delivery's provider_ref).
CONSENTRY_EMAIL_MESSAGE_ID_DOMAIN = os.environ.get("CONSENTRY_EMAIL_MESSAGE_ID_DOMAIN", "consentry.local")
# The "anymail" provider posts to an ESP's API with this django-anymail backend.
CONSENTRY_ANYMAIL_BACKEND = os.environ.get("CONSENTRY_ANYMAIL_BACKEND", "anymail.backends.sendgrid.EmailBackend")
ANYMAIL = {
    name: os.environ[name]
    for name in ("SENDGRID_API_KEY", "SENDGRID_API_URL", "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY")
    if os.environ.get(name)
}
# ESP webhooks (/webhooks/anymail/<esp>/tracking/ and .../inbound/) require this
# HTTP basic auth, "user:password"; without it (or, for SendGrid's tracking
# webhook, its signature key) they refuse every request.
if os.environ.get("CONSENTRY_ANYMAIL_WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = os.environ["CONSENTRY_ANYMAIL_WEBHOOK_SECRET"]
# Where List-Unsubscribe's mailto points: mail arriving there (through the
# ESP's inbound webhook) unsubscribes the address named by its token.
CONSENTRY_UNSUBSCRIBE_MAILBOX = os.environ.get(
    "CONSENTRY_UNSUBSCRIBE_MAILBOX", f"unsubscribe@{CONSENTRY_EMAIL_MESSAGE_ID_DOMAIN}"
)
# Resubscribe emails: at most one per address per this many hours.
CONSENTRY_RESUBSCRIBE_EVERY_HOURS = float(os.environ.get("CONSENTRY_RESUBSCRIBE_EVERY_HOURS", 24))
# Web Push for in-app notices, signed with VAPID (RFC 8292). The private key is
# base64url (raw or DER), a PEM, or a PEM file's path; unset, push is off and
# in-app notices are still stored. The subject is a mailto: or https: contact.
CONSENTRY_VAPID_PRIVATE_KEY = os.environ.get("CONSENTRY_VAPID_PRIVATE_KEY", "")
CONSENTRY_VAPID_PUBLIC_KEY = os.environ.get("CONSENTRY_VAPID_PUBLIC_KEY", "")
CONSENTRY_VAPID_SUBJECT = os.environ.get("CONSENTRY_VAPID_SUBJECT", "")
# Accept http://127.0.0.1 push endpoints (a push service on this machine, for tests).
CONSENTRY_PUSH_ALLOW_LOOPBACK = _env_bool("CONSENTRY_PUSH_ALLOW_LOOPBACK", False)
# Webhook endpoints (signed outbound events) must lead to the internet, over https://; set this to
# allow private and loopback addresses, and http:// (an EHR on the practice's own network, tests).
CONSENTRY_WEBHOOKS_ALLOW_PRIVATE = _env_bool("CONSENTRY_WEBHOOKS_ALLOW_PRIVATE", False)
# Sender pacing: a dispatch task waits at most this long, in all, for its
# sender's next free instant; the rest of its deliveries are handed to a new
# task that runs when the sender is free, so other practices are not held up.
CONSENTRY_PACING_MAX_WAIT_SECONDS = float(os.environ.get("CONSENTRY_PACING_MAX_WAIT_SECONDS", 1.0))
# A dispatch task checks consent for this many deliveries at once, then hands
# them over (each one over the network is checked again as it is taken).
CONSENTRY_DISPATCH_CHUNK = int(os.environ.get("CONSENTRY_DISPATCH_CHUNK", 100))
