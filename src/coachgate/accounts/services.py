"""Account use cases: users, tokens and coach applications."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from zoneinfo import available_timezones

from django.db import IntegrityError, transaction

from coachgate.kit import clock
from coachgate.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from coachgate.kit.rows import ALL, get_unique

from .models import ApiToken, ApplicationStatus, CoachApplication, Role, User, token_digest

TOKEN_PREFIX = "cg_"  # noqa: S105 - a public prefix, not a secret
_ZONES = frozenset(available_timezones())


def validate_timezone(name: str, field: str = "timezone") -> str:
    if name not in _ZONES:
        raise InvalidInput(
            f"'{name}' is not an IANA time zone (for example Europe/London).",
            details={"field": field},
        )
    return name


def create_user(
    *, email: str, password: str | None, role: str = Role.STUDENT, display_name: str = "",
    timezone: str = "UTC",
) -> User:
    if role not in Role.values:
        raise InvalidInput(f"Unknown role '{role}'.", details={"field": "role"})
    validate_timezone(timezone)
    if User.objects.filter(email__iexact=email).exists():
        raise Conflict(f"A user with email {email} already exists.", details={"field": "email"})
    return User.objects.create_user(
        email, password, role=role, display_name=display_name, timezone=timezone
    )


def update_account(user: User, *, display_name: str, timezone: str) -> User:
    """The account page's settings: the name others see and the zone pages show times in."""
    name = display_name.strip()
    if len(name) > 120:
        raise InvalidInput("The display name is at most 120 characters.",
                           details={"field": "display_name"})
    if any(ord(c) < 32 for c in name):
        raise InvalidInput("The display name may not contain control characters.",
                           details={"field": "display_name"})
    user.display_name = name
    user.timezone = validate_timezone(timezone)
    user.save(update_fields=["display_name", "timezone"])
    return user


def timezone_names() -> list[str]:
    """Every IANA zone a user may choose, sorted (the account page's choices)."""
    return sorted(_ZONES)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    raw: str


def issue_token(user: User, name: str = "default") -> IssuedToken:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name[:80] or "default", prefix=raw[:10], digest=token_digest(raw)
    )
    return IssuedToken(token=token, raw=raw)


def authenticate_token(raw: str, *, now: datetime | None = None) -> User | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    # Every API request starts here: one read compiled once (through the ORM, compiling
    # the select_related query was ~0.9 ms of each request's CPU).
    found = get_unique("digest", token_digest(raw),
                       (ApiToken, ("id", "user", "revoked_at", "last_used_at")),
                       (User, ALL), join_on=("user",))
    if found is None:
        return None
    token, user = cast(ApiToken, found[0]), cast(User, found[1])
    if token.revoked_at is not None or not user.is_active:
        return None
    token.user = user
    when = now or clock.now()
    # Writing on every request would serialize readers on SQLite; a minute's precision is
    # all an operator needs to see whether a token is in use.
    if token.last_used_at is None or (when - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=when)
    return user


def revoke_token(actor: User, token_id: int, *, now: datetime | None = None) -> None:
    token = ApiToken.objects.filter(pk=token_id).first()
    if token is None or (token.user_id != actor.pk and not actor.is_admin):
        raise NotFound("No such token.")
    token.revoked_at = now or clock.now()
    token.save(update_fields=["revoked_at"])


def apply_as_coach(
    user: User, *, display_name: str, bio: str, specialties: list[str], timezone: str,
    motivation: str = "",
) -> CoachApplication:
    if user.role != Role.STUDENT:
        raise Conflict("Only a student account can apply to become a coach.")
    validate_timezone(timezone)
    try:
        with transaction.atomic():
            return CoachApplication.objects.create(
                user=user, display_name=display_name, bio=bio,
                specialties=specialties, timezone=timezone, motivation=motivation,
            )
    except IntegrityError:
        raise Conflict("You already have an application waiting for review.") from None


def visible_applications(actor: User) -> list[CoachApplication]:
    qs = CoachApplication.objects.select_related("user").order_by("-submitted_at")
    if not actor.is_admin:
        qs = qs.filter(user=actor)
    return list(qs)


def get_application(actor: User, application_id: int) -> CoachApplication:
    app = CoachApplication.objects.select_related("user").filter(pk=application_id).first()
    if app is None or (app.user_id != actor.pk and not actor.is_admin):
        raise NotFound("No such application.")
    return app


def lock_pending_application(actor: User, application_id: int) -> CoachApplication:
    """Load an application for review, inside the caller's transaction."""
    if not actor.is_admin:
        raise Forbidden("Only an admin can review coach applications.")
    app = (
        CoachApplication.objects.select_for_update()
        .select_related("user")
        .filter(pk=application_id)
        .first()
    )
    if app is None:
        raise NotFound("No such application.")
    if app.status != ApplicationStatus.PENDING:
        raise Conflict(f"This application was already {app.status}.")
    return app


@transaction.atomic
def reject_application(
    actor: User, application_id: int, *, note: str = "", now: datetime | None = None
) -> CoachApplication:
    app = lock_pending_application(actor, application_id)
    app.status = ApplicationStatus.REJECTED
    app.reviewed_at = now or clock.now()
    app.reviewed_by = actor
    app.decision_note = note
    app.save()
    return app
