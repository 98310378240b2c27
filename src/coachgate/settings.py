"""The one settings module. Everything an operator sets comes from the environment.

See docs/configuration.md for the list of variables.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
import django_stubs_ext

from coachgate.kit.config import from_environment

# Generic Django classes (ModelAdmin[Offer], QuerySet[Session]) subscriptable at runtime, as
# mypy strict wants them written.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DATA_DIR = Path(os.environ.get("COACHGATE_DATA_DIR", Path.cwd() / "var")).resolve()

# Production mode: one switch (COACHGATE_PRODUCTION=1) that turns on the HTTPS posture
# below and refuses to start with DEBUG on or a weak secret key (see _weak_posture).
PRODUCTION = _env_bool("COACHGATE_PRODUCTION", False)


def _private_dir(path: Path) -> None:
    """The data directory holds the database and the generated secret key: a new one is
    created 0700 (an existing one is left as the operator made it)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _secret_key() -> str:
    # An operator sets COACHGATE_SECRET_KEY. The embedded default keeps a generated key in
    # the data directory so sessions survive restarts without anyone choosing a key.
    key = os.environ.get("COACHGATE_SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        return ""  # refused below: production never generates its own key
    _private_dir(DATA_DIR)
    path = DATA_DIR / "secret_key"
    if not path.exists():
        # Created 0600 in one step: never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = _env_bool("COACHGATE_DEBUG", False)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("COACHGATE_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("COACHGATE_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# Values that appear in documentation or examples; never a real deployment's key.
_EXAMPLE_SECRET_KEYS = frozenset({"change-me", "changeme", "secret", "...", "dev", "demo"})


def _weak_posture() -> list[str]:
    """What production mode refuses. SECRET_KEY signs sessions and, unless
    COACHGATE_ENCRYPTION_KEY is set, the key for secrets at rest derives from it."""
    problems = []
    if DEBUG:
        problems.append("COACHGATE_DEBUG is on (debug pages show settings and code)")
    key = os.environ.get("COACHGATE_SECRET_KEY", "")
    if not key:
        problems.append("COACHGATE_SECRET_KEY is not set (production keeps the key out of "
                        "the data directory, next to the data it protects)")
    elif (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-")
          or key.strip().lower() in _EXAMPLE_SECRET_KEYS):
        problems.append("COACHGATE_SECRET_KEY is too short or a default (at least 50 "
                        "random characters, e.g. python3 -c 'import secrets; "
                        "print(secrets.token_urlsafe(50))')")
    return problems


if PRODUCTION and (_problems := _weak_posture()):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("COACHGATE_PRODUCTION=1 refuses to start: "
                               + "; ".join(_problems) + ".")

# --- HTTPS posture (production defaults; each can be set on its own) --------------------
# Behind a TLS-terminating proxy, set COACHGATE_TRUSTED_PROXY so that the proxy's
# X-Forwarded-Proto tells coachgate a request was HTTPS (see docs/operations.md).
SECURE_SSL_REDIRECT = _env_bool("COACHGATE_SSL_REDIRECT", PRODUCTION)
# Probes from the machine itself speak plain HTTP to 127.0.0.1.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = int(os.environ.get("COACHGATE_HSTS_SECONDS",
                                         "31536000" if PRODUCTION else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("COACHGATE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = _env_bool("COACHGATE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else [
    # Preloading is a submission to the browsers' list that is hard to undo: the operator's
    # decision (COACHGATE_HSTS_PRELOAD), not a default that check --deploy should push.
    "security.W021",
]
# Content-Security-Policy for every response (coachgate.web.middleware). "{nonce}" is
# replaced per response by the nonce that templates put on their inline scripts. Empty:
# no header.
CONTENT_SECURITY_POLICY = os.environ.get(
    "COACHGATE_CSP",
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # django-ninja's templates and static files: /api/v1/docs serves its bundled Swagger UI
    # (without it in INSTALLED_APPS the page loads Swagger UI from a CDN).
    "ninja",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.discord",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "coachgate.kit",
    "coachgate.accounts",
    "coachgate.catalog",
    "coachgate.scheduling",
    "coachgate.notify",
    "coachgate.access",
    "coachgate.billing",
    "coachgate.meetings",
    "coachgate.packs",
    "coachgate.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "coachgate.web.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "coachgate.web.middleware.InputGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "coachgate.web.middleware.ViewerTimezoneMiddleware",
    "coachgate.web.middleware.ApiJsonErrorsMiddleware",
    "coachgate.web.busy.DatabaseBusyMiddleware",  # a lock wait that ran out: 503, not 500
]

ROOT_URLCONF = "coachgate.urls"
WSGI_APPLICATION = "coachgate.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # web's templates first: they restyle allauth's pages (allauth/layouts/base.html)
        # and give the 400/403/404/500 pages, which app order alone would not let them do.
        "DIRS": [BASE_DIR / "web" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "coachgate.web.context.chrome",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# DATABASE_URL selects the engine. The embedded default is a SQLite file in the data
# directory, in WAL mode with IMMEDIATE transactions: every write transaction takes the
# write lock up front, so writers are serialized and the overlap trigger sees committed
# state (see scheduling/migrations/0002).
_default_sqlite = f"sqlite:///{DATA_DIR / 'coachgate.sqlite3'}"


def _private_sqlite(path: Path) -> None:
    """The database file is created 0600 before SQLite opens it: SQLite gives its -wal and
    -shm files the database file's mode, so all three are private. Files an older version
    created with the umask's mode are tightened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if p.exists() and p.stat().st_mode & 0o077:
                p.chmod(0o600)
    except OSError:  # a read-only or foreign-owned file: SQLite reports what matters
        pass


DATABASE_URL = os.environ.get("DATABASE_URL") or _default_sqlite
if DATABASE_URL.startswith("sqlite"):
    _private_dir(DATA_DIR)
_db = dj_database_url.parse(
    DATABASE_URL, conn_max_age=int(os.environ.get("COACHGATE_DB_CONN_MAX_AGE", "60"))
)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["CONN_MAX_AGE"] = 0 if _db["NAME"] == ":memory:" else _db["CONN_MAX_AGE"]
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
        ),
    }
    # Tests use a real file (not shared-cache memory) so that concurrent threads behave
    # as they do in production.
    _db["TEST"] = {"NAME": str(DATA_DIR / "test-coachgate.sqlite3")}
    if _db["NAME"] != ":memory:" and not str(_db["NAME"]).startswith("file:"):
        _private_sqlite(Path(_db["NAME"]))
if _db["ENGINE"] == "django.db.backends.postgresql":
    # Server-side parameters let psycopg prepare the statements a process runs again and
    # again (after 5 runs): PostgreSQL then skips parsing and planning them, and psycopg
    # stops building each statement's text. The booking race went from 156 to 198 bookings/s
    # with it (docs/benchmarks.md). COACHGATE_DB_SERVER_SIDE_BINDING=0 turns it off, for a
    # pooler that cannot keep prepared statements (PgBouncer before 1.21 in transaction
    # mode).
    _db["OPTIONS"] = {**_db.get("OPTIONS", {}), "server_side_binding": os.environ.get(
        "COACHGATE_DB_SERVER_SIDE_BINDING", "1").strip().lower() not in ("0", "false", "no")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ATOMIC_REQUESTS = False

# --- Auth -----------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = os.environ.get("COACHGATE_EMAIL_VERIFICATION", "none")
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "/accounts/login/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# allauth decides by the client's address (the login rate limit) through this adapter,
# which believes X-Forwarded-For only from COACHGATE_TRUSTED_PROXY (coachgate.kit.http).
ACCOUNT_ADAPTER = "coachgate.web.adapter.AccountAdapter"

# --- Cache ----------------------------------------------------------------------------
# allauth keeps its rate-limit counters (failed logins per address and per account) in
# the default cache. A per-process memory cache would give every web process its own
# counters and forget them on restart, so the default is a table in the database that
# every process shares (`coachgate migrate`, `serve` and `demo` create it).
CACHES = {
    "default": {
        "BACKEND": os.environ.get("COACHGATE_CACHE_BACKEND",
                                  "django.core.cache.backends.db.DatabaseCache"),
        "LOCATION": os.environ.get("COACHGATE_CACHE_LOCATION", "coachgate_cache"),
    }
}

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "COACHGATE_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("COACHGATE_FROM_EMAIL", "coachgate@localhost")

EMAIL_HOST = os.environ.get("COACHGATE_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("COACHGATE_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("COACHGATE_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("COACHGATE_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("COACHGATE_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
EMAIL_FILE_PATH = DATA_DIR / "mail"  # for the file backend (the demo writes mail there)

# --- Tasks (wake-ups; truth stays in domain rows) ---------------------------------------
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# --- Linked accounts (Discord) ---------------------------------------------------------
# Tokens are not stored by allauth in plain text: coachgate keeps its own encrypted copy
# (accounts.DiscordLink), so allauth's token table stays empty.
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS = {
    "discord": {
        # Points allauth at COACHGATE["DISCORD_API_URL"] (Discord or the local emulator).
        "provider_class": "coachgate.accounts.discord_oauth.provider.CoachgateDiscordProvider",
        "SCOPE": ["identify", "guilds.join"],
        "APP": {
            "client_id": os.environ.get("COACHGATE_DISCORD_CLIENT_ID", ""),
            "secret": os.environ.get("COACHGATE_DISCORD_CLIENT_SECRET", ""),
        },
    }
}

# --- I18N / time ----------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Dates and times name their zone wherever Django formats them (admin lists, read-only
# fields): coachgate.web.formats.
FORMAT_MODULE_PATH = ["coachgate.web.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
WHITENOISE_USE_FINDERS = True
# Uploads (coach photos, offer thumbnails): validated and re-encoded by Pillow, stored under
# the data directory, served by coachgate.web (never a path the uploader chose).
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = _env_bool("COACHGATE_SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- coachgate ------------------------------------------------------------------------
# Every product setting, typed, with its default and meaning: coachgate.kit.config.
COACHGATE = from_environment()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("COACHGATE_LOG_LEVEL", "INFO")},
    # httpx logs every request at INFO; the worker counts calls in metrics instead.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"},
                # one INFO line per task run; the worker's own log says what matters
                "django_tasks": {"level": "WARNING"}},
}
