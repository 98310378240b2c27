"""coachgate's own settings: one typed object, read from ``COACHGATE_*`` variables.

``CoachgateSettings`` names every product setting once, with its type and its default.
settings.py builds ``settings.COACHGATE`` from it (so Django's ``override_settings`` and a
test's ``settings.COACHGATE = {...}`` keep working), and code reads it through
:func:`conf`, which validates the current dict into the typed object:

    from coachgate.kit.config import conf
    conf().PUBLIC_URL

Django-level variables (database, e-mail, cookies, HTTPS posture) are read by
settings.py itself; :data:`DJANGO_LEVEL` lists them so that :func:`unknown_variables`
can report any other ``COACHGATE_*`` name, usually a typo, when a process starts.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "COACHGATE_"


def _percent(value: str) -> str:
    """A percentage as an exact number between 0 and 100 ("10", "12.5", "1/3")."""
    try:
        d = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{value!r} is not a number") from None
    if not 0 <= d <= 100:
        raise ValueError(f"{value!r} is not a percentage between 0 and 100")
    return value.strip()


def _base_url(value: str) -> str:
    value = value.strip()
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


Percent = Annotated[str, AfterValidator(_percent)]
BaseURL = Annotated[str, AfterValidator(_base_url)]


class CoachgateSettings(BaseModel):
    """Every coachgate product setting (``COACHGATE_<NAME>`` in the environment)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    DEFAULT_CURRENCY: str = Field(default="USD", min_length=3, max_length=3)
    # The address students and coaches reach coachgate at (links in e-mails, Discord).
    PUBLIC_URL: BaseURL = "http://127.0.0.1:8000"
    # Key for secrets at rest (bot token, linked-account tokens). Empty: derived from
    # SECRET_KEY. ENCRYPTION_KEY_OLD still decrypts during a rotation (kit.crypto).
    ENCRYPTION_KEY: str = ""
    ENCRYPTION_KEY_OLD: str = ""
    # Discord: the admin page overrides these; env vars let automation configure a guild.
    DISCORD_API_URL: BaseURL = "https://discord.com/api/v10"
    DISCORD_GUILD_ID: str = ""
    DISCORD_BOT_TOKEN: str = ""
    # The worker: how often it polls for due wake-ups and how often it sweeps for drift.
    WORKER_POLL_INTERVAL: float = Field(default=0.1, gt=0, le=60)
    SWEEP_INTERVAL: float = Field(default=30.0, gt=0)
    # How long a worker holds an access row it is working on before another may take it.
    ACCESS_LEASE_SECONDS: float = Field(default=60.0, gt=0)
    # Shared secret for the external-cron trigger endpoint (empty: endpoint disabled).
    CRON_SECRET: str = ""
    # Bearer token for /metrics from another machine (loopback and admins need none).
    METRICS_TOKEN: str = ""
    # The reverse proxy in front of coachgate, as its address reaches coachgate (e.g.
    # 127.0.0.1), or "*" for any peer. Only its X-Forwarded-For / X-Forwarded-Proto are
    # believed; TRUSTED_PROXY_COUNT proxies of yours stand in a row in front of coachgate.
    TRUSTED_PROXY: str = ""
    TRUSTED_PROXY_COUNT: int = Field(default=1, ge=1, le=10)
    # Money. Percentages are exact decimals (strings); amounts are integer minor units.
    PLATFORM_FEE_PERCENT: Percent = "10"
    NO_SHOW_CHARGE_PERCENT: Percent = "50"
    # How long before the start a session's card is authorised (card holds last 5-7 days).
    AUTHORIZE_BEFORE_HOURS: int = Field(default=24, ge=0, le=24 * 7)
    # "offline" (default: amounts recorded, money collected outside) or "stripe".
    PAYMENT_GATEWAY: Literal["offline", "stripe"] = "offline"
    STRIPE_SECRET_KEY: str = ""
    STRIPE_PUBLISHABLE_KEY: str = ""
    STRIPE_WEBHOOK_SECRET: str = ""
    # Empty: Stripe itself. Tests and the demo point it at the local fake.
    STRIPE_API_BASE: BaseURL = ""
    # Per HTTP attempt, and retries of one call (same idempotency key): a call takes at most
    # 3 x 10 s + 1.5 s backoff. Calls run outside transactions (docs/stripe.md).
    STRIPE_TIMEOUT: float = Field(default=10.0, gt=0, le=120)
    STRIPE_MAX_NETWORK_RETRIES: int = Field(default=2, ge=0, le=10)
    # Video: the Jitsi server for coaches who connected none of their own.
    JITSI_URL: BaseURL = "https://meet.jit.si"
    # Zoom (a user-managed OAuth app) and Google (an OAuth client with the Meet API). Empty
    # URLs: the services themselves; tests and the demo point them at local emulators.
    ZOOM_CLIENT_ID: str = ""
    ZOOM_CLIENT_SECRET: str = ""
    ZOOM_WEBHOOK_SECRET: str = ""
    ZOOM_OAUTH_URL: BaseURL = "https://zoom.us"
    ZOOM_API_URL: BaseURL = "https://api.zoom.us/v2"
    GOOGLE_CLIENT_ID: str = ""
    GOOGLE_CLIENT_SECRET: str = ""
    GOOGLE_AUTH_URL: BaseURL = "https://accounts.google.com"
    GOOGLE_TOKEN_URL: BaseURL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
    GOOGLE_MEET_API_URL: BaseURL = "https://meet.googleapis.com/v2"
    # Packs and seats.
    PACK_GRACE_HOURS: int = Field(default=72, ge=0)
    PACK_FINAL_WARNING_HOURS: int = Field(default=12, ge=0)
    PACK_VALID_DAYS: int = Field(default=90, ge=1)


class _Environment(BaseSettings, CoachgateSettings):
    """The same fields, read from the process environment (settings.py only)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, case_sensitive=True, extra="ignore",
                                      frozen=True)


# COACHGATE_* variables settings.py reads for Django itself, the CLI's, and the tests'.
DJANGO_LEVEL = frozenset({
    "SECRET_KEY", "DATA_DIR", "PRODUCTION", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS",
    "SSL_REDIRECT", "HSTS_SECONDS", "HSTS_INCLUDE_SUBDOMAINS", "HSTS_PRELOAD", "CSP",
    "DB_CONN_MAX_AGE", "DB_SERVER_SIDE_BINDING", "EMAIL_VERIFICATION", "CACHE_BACKEND",
    "CACHE_LOCATION",
    "EMAIL_BACKEND", "FROM_EMAIL", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USER", "EMAIL_PASSWORD",
    "EMAIL_USE_TLS", "DISCORD_CLIENT_ID", "DISCORD_CLIENT_SECRET", "SECURE_COOKIES",
    "LOG_LEVEL",
})
CLI_LEVEL = frozenset({"HOST", "PORT", "USER_PASSWORD"})
TEST_LEVEL = frozenset({"STRIPE_FIXTURES", "BENCH_REPORT", "CHROMIUM", "ARTIFACTS"})  # tests, bench


def known_names() -> frozenset[str]:
    """Every ``COACHGATE_*`` name coachgate reads (without the prefix)."""
    return frozenset(CoachgateSettings.model_fields) | DJANGO_LEVEL | CLI_LEVEL | TEST_LEVEL


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per ``COACHGATE_*`` variable nothing reads, with the nearest known name."""
    environ = os.environ if environ is None else environ
    known = known_names()
    lines = []
    for var in sorted(environ):
        if not var.startswith(PREFIX) or var[len(PREFIX):] in known:
            continue
        near = difflib.get_close_matches(var[len(PREFIX):], sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {PREFIX}{near[0]}?)" if near else ""
        lines.append(f"{var} is not a coachgate setting and is ignored{hint}")
    return lines


def from_environment() -> dict[str, Any]:
    """settings.COACHGATE as settings.py builds it; a bad value stops the start with the
    variable's name and what is wrong."""
    try:
        return _Environment().model_dump()
    except ValidationError as exc:
        problems = "; ".join(f"{PREFIX}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"bad coachgate setting: {problems}") from None


_cache: tuple[dict[str, Any], dict[str, Any], CoachgateSettings] | None = None


def conf() -> CoachgateSettings:
    """The typed settings, validated from the current ``settings.COACHGATE``.

    Validation runs again only when the dict changed (a test's override); an invalid
    override raises pydantic's ValidationError naming the field.
    """
    global _cache
    from django.conf import settings

    current: dict[str, Any] = settings.COACHGATE
    cached = _cache
    if cached is not None and cached[0] is current and cached[1] == current:
        return cached[2]
    typed = CoachgateSettings.model_validate(dict(current))
    _cache = (current, dict(current), typed)
    return typed
