"""Shared helpers for pack tests (tests/packs and tests/e2e/test_pack_lifecycle.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from coachgate.accounts.models import User
from coachgate.catalog.models import Offer
from coachgate.notify.models import Channel, Notification
from coachgate.notify.services import render
from tests.factories import MONDAY, make_offer

ONE_LEFT = "You have 1 session remaining. Renew now to continue."
COMPLETE = "Your pack is complete. Renew within 72 hours to keep your seat."
FINAL_WARNING = ("Your seat will be released in 12 hours. Renew now to keep your mentorship "
                 "active.")


def make_pack_offer(coach: User, **overrides: Any) -> Offer:
    data: dict[str, Any] = {"title": "Mentorship pack", "price_minor": 20000, "pack_size": 4}
    data.update(overrides)
    return make_offer(coach, **data)


def slot(day: int, hour: int = 9) -> datetime:
    """A bookable start: ``day`` days after MONDAY at ``hour``:00 UTC (London = UTC in
    March before the change on the 30th; coaches are available 09:00–17:00)."""
    return MONDAY.replace(hour=hour) + timedelta(days=day)


def emails(user: User, template: str) -> list[Notification]:
    return list(Notification.objects.filter(user=user, template=template,
                                            channel=Channel.EMAIL).order_by("pk"))


def bodies(user: User, template: str) -> list[str]:
    return [render(n.template, n.context, n.user).body for n in emails(user, template)]


def text_count(user: User, text: str) -> int:
    """How many of the user's emails contain ``text``, whatever their template."""
    rows = Notification.objects.filter(user=user, channel=Channel.EMAIL)
    return sum(text in render(n.template, n.context, n.user).body for n in rows)
