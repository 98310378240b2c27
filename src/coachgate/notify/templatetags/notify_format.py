"""Filters for the plain-text notification templates.

Context values are JSON, so times arrive as ISO 8601 strings; ``when`` shows them in the
active time zone, which the outbox sets to the recipient's own.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()


def _parse(value: object) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    if parsed.tzinfo is None:  # JSON times are UTC instants; a naive one is read as UTC
        parsed = timezone.make_aware(parsed, timezone.get_fixed_timezone(0))
    return timezone.localtime(parsed)


@register.filter
def when(value: object, style: str = "full") -> str:
    """'2031-03-03T14:00:00+00:00' → 'Monday 3 March 2031, 14:00 (Europe/London)'.

    ``|when:"time"`` gives '15:00' and ``|when:"date"`` 'Monday 3 March 2031'.
    """
    local = _parse(value)
    if local is None:
        return str(value or "")
    day = f"{local:%A} {local.day} {local:%B %Y}"
    clock = f"{local:%H:%M}"
    if style == "time":
        return clock
    if style == "date":
        return day
    return f"{day}, {clock} ({timezone.get_current_timezone_name()})"


@register.filter
def money(amount_minor: object, currency: str) -> str:
    """1999|money:"USD" → '19.99 USD'; 500|money:"JPY" → '500 JPY'."""
    from coachgate.kit.money import format_amount

    try:
        return format_amount(int(str(amount_minor)), str(currency))
    except ValueError:
        return f"{amount_minor} {currency}"
