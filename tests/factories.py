"""Test builders: users, coaches, offers and tokens made through the real services (so
each carries what a real one does: an approved application, availability, a published
offer). Fixtures live in conftest.py and call these; tests import them from here."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from coachgate.accounts import services as accounts
from coachgate.accounts.models import User
from coachgate.catalog import services as catalog
from coachgate.catalog.models import CoachProfile, Offer
from coachgate.scheduling import services as scheduling

# A fixed Monday, far enough ahead that every test's slots are in the future.
MONDAY = datetime(2031, 3, 3, tzinfo=UTC)


def make_admin(email: str = "admin@test.example") -> User:
    return accounts.create_user(email=email, password="pw-admin-123", role="admin")


def make_student(email: str = "student@test.example", tz: str = "UTC") -> User:
    return accounts.create_user(email=email, password="pw-student-123", timezone=tz)


def make_coach(
    email: str = "coach@test.example", tz: str = "Europe/London",
    rules: list[tuple[int, time, time]] | None = None, admin: User | None = None,
) -> User:
    """An approved coach with weekly availability (default: every day 09:00–17:00)."""
    user = accounts.create_user(email=email, password="pw-coach-123", timezone=tz)
    app = accounts.apply_as_coach(user, display_name=email.split("@")[0].title(), bio="bio",
                                  specialties=["python"], timezone=tz)
    reviewer = admin or User.objects.filter(role="admin").first() or make_admin(
        f"reviewer-{email}")
    catalog.approve_application(reviewer, app.pk)
    user.refresh_from_db()
    rules = rules if rules is not None else [(d, time(9), time(17)) for d in range(7)]
    scheduling.set_weekly_availability(user, [scheduling.RuleInput(*r) for r in rules])
    return user


def make_offer(coach: User, publish: bool = True, **overrides: Any) -> Offer:
    data: dict[str, Any] = {
        "title": "Session", "price_minor": 5000, "currency": "USD", "duration_minutes": 60,
        "session_type": "video", "delivery": "jitsi", "min_notice_minutes": 0,
        "horizon_days": 730,
    }
    data.update(overrides)
    offer = catalog.create_offer(coach, data)
    if publish:
        offer = catalog.set_offer_status(coach, offer.pk, "published")
    return offer


def token_for(user: User) -> str:
    return accounts.issue_token(user, "test").raw


def coach_profile(user: User) -> CoachProfile:
    return CoachProfile.objects.get(user=user)
