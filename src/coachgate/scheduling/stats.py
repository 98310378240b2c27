"""Figures for the admin statistics: sessions per day and booked against offered hours.

Every query is one bounded aggregate (GROUP BY day and status, or by coach, LIMIT n) that
the database answers from ``session_stats_idx``; no session row reaches Python, so a
period with a million sessions costs what the aggregate costs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum
from django.db.models.functions import TruncDate

from coachgate.catalog.models import CoachProfile

from .lifecycle import SessionStatus
from .models import AvailabilityOverride, OverrideKind, Session, WeeklyAvailability

# The outcomes the statistics count, in the order the page shows them.
OUTCOMES = (SessionStatus.COMPLETED, SessionStatus.NO_SHOW_STUDENT, SessionStatus.NO_SHOW_COACH,
            SessionStatus.EARLY_END_SHORT, SessionStatus.CANCELLED)


@dataclass
class SessionDay:
    day: date
    booked: int = 0  # every session starting that day, whatever became of it
    by_status: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return self.by_status.get(status, 0)


def sessions_by_day(start: datetime, end: datetime, zone: ZoneInfo) -> list[SessionDay]:
    """Sessions starting in [start, end), per day in ``zone``, counted by status. Every day
    of the period is listed, days without sessions too (a chart needs the gaps)."""
    rows = (Session.objects.filter(starts_at__gte=start, starts_at__lt=end)
            .annotate(day=TruncDate("starts_at", tzinfo=zone))
            .values("day", "status").annotate(n=Count("*")).order_by())
    days: dict[date, SessionDay] = {}
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(
        zone).date()
    d = first
    while d <= last:
        days[d] = SessionDay(d)
        d += timedelta(days=1)
    for row in rows:
        entry = days.setdefault(row["day"], SessionDay(row["day"]))
        entry.booked += row["n"]
        entry.by_status[row["status"]] = entry.by_status.get(row["status"], 0) + row["n"]
    return [days[k] for k in sorted(days)]


@dataclass
class CoachHours:
    coach_id: int
    name: str
    booked_hours: float
    offered_hours: float


def hours_by_coach(start: datetime, end: datetime, *, limit: int = 15) -> list[CoachHours]:
    """The ``limit`` coaches with the most booked hours in [start, end) (sessions that were
    not cancelled), each with the hours their availability offered over the same days."""
    duration = ExpressionWrapper(F("ends_at") - F("starts_at"), output_field=DurationField())
    top = list(Session.objects.filter(starts_at__gte=start, starts_at__lt=end)
               .exclude(status=SessionStatus.CANCELLED)
               .values("coach_id").annotate(booked=Sum(duration))
               .order_by("-booked", "coach_id")[:limit])
    if not top:
        return []
    ids = [row["coach_id"] for row in top]
    offered = offered_hours(ids, start, end)
    names = dict(CoachProfile.objects.filter(pk__in=ids).values_list("pk", "display_name"))
    return [CoachHours(row["coach_id"], names.get(row["coach_id"], f"coach {row['coach_id']}"),
                       round(_hours(row["booked"]), 2), round(offered.get(row["coach_id"], 0), 2))
            for row in top]


def _hours(value: timedelta | int | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds() / 3600
    return value / 3_600_000_000  # microseconds (a backend that sums durations as numbers)


def _length(a: time | None, b: time | None) -> float:
    if a is None or b is None:
        return 0.0
    return max(0.0, (datetime.combine(date.min, b) - datetime.combine(date.min, a))
               .total_seconds() / 3600)


def offered_hours(coach_ids: list[int], start: datetime, end: datetime) -> dict[int, float]:
    """Hours each coach's weekly rules and date overrides offered on the days of
    [start, end) (in the coach's zone): weekly hours per weekday, a blocked day removes its
    hours, blocked hours remove theirs, extra hours add theirs. Reads the coaches' rules
    and overrides only (a few rows per coach), never a session."""
    weekly: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for coach_id, weekday, w_start, w_end in WeeklyAvailability.objects.filter(
            coach_id__in=coach_ids).values_list("coach_id", "weekday", "start_time", "end_time"):
        weekly[coach_id][weekday] += _length(w_start, w_end)
    zones = dict(CoachProfile.objects.filter(pk__in=coach_ids).values_list("pk", "timezone"))
    result: dict[int, float] = {}
    for coach_id in coach_ids:
        try:
            zone = ZoneInfo(zones.get(coach_id) or "UTC")
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        first = start.astimezone(zone).date()
        last = (end - timedelta(microseconds=1)).astimezone(zone).date()
        per_day: dict[date, float] = {}
        d = first
        while d <= last:
            per_day[d] = weekly[coach_id].get(d.weekday(), 0.0)
            d += timedelta(days=1)
        for day, kind, a, b in AvailabilityOverride.objects.filter(
                coach_id=coach_id, day__gte=first, day__lte=last).values_list(
                "day", "kind", "start_time", "end_time"):
            if kind == OverrideKind.EXTRA:
                per_day[day] = per_day.get(day, 0.0) + _length(a, b)
            elif a is None:  # the whole day blocked
                per_day[day] = 0.0
            else:
                per_day[day] = max(0.0, per_day.get(day, 0.0) - _length(a, b))
        result[coach_id] = sum(per_day.values())
    return result


def outcome_totals(days: list[SessionDay]) -> dict[str, int]:
    """The period's totals per status (from the per-day counts: no second query)."""
    totals = {s.value: 0 for s in OUTCOMES}
    totals["booked"] = 0
    for d in days:
        totals["booked"] += d.booked
        for status, n in d.by_status.items():
            totals[status] = totals.get(status, 0) + n
    return totals


__all__ = ["OUTCOMES", "CoachHours", "SessionDay", "hours_by_coach", "offered_hours",
           "outcome_totals", "sessions_by_day"]
