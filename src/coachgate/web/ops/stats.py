"""/ops/: the platform's statistics over a chosen period, as charts and as tables.

Every figure comes from one bounded aggregate in its domain (scheduling.stats,
access.stats, billing.services.stats); this page only picks the period and lays them out.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET

from coachgate.access import stats as access_stats
from coachgate.billing.services import stats as billing_stats
from coachgate.kit import clock
from coachgate.kit.money import minor_digits
from coachgate.scheduling import stats as scheduling_stats
from coachgate.scheduling.lifecycle import SessionStatus

from .common import admin_required, context

PRESETS = (7, 30, 90)
MAX_DAYS = 366
S = SessionStatus


class PeriodForm(forms.Form):
    start = forms.DateField(label="From", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False,
                          widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The period must end on or after its first day.")
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return data


def _period(request: HttpRequest, today: date) -> tuple[date, date, int | None, PeriodForm]:
    """The chosen days (first, last, both included), the preset if one was chosen, and the
    form (with its errors when the dates were refused: the default period is shown)."""
    preset = request.GET.get("days", "")
    if preset.isdigit() and int(preset) in PRESETS:
        days = int(preset)
        first = today - timedelta(days=days - 1)
        return first, today, days, PeriodForm(initial={"start": first, "end": today})
    form = PeriodForm(request.GET or None)
    if form.is_bound and form.is_valid() and form.cleaned_data.get("start"):
        first = form.cleaned_data["start"]
        last = form.cleaned_data.get("end") or min(today, first + timedelta(days=29))
        if last < first or (last - first).days >= MAX_DAYS:
            last = first + timedelta(days=29)
        return first, last, None, form
    first = today - timedelta(days=29)
    if not form.is_bound or form.is_valid():  # nothing chosen: the last 30 days
        return first, today, 30, PeriodForm(initial={"start": first, "end": today})
    return first, today, None, form  # refused: its errors, over the default period


def _major(amount_minor: int, currency: str) -> float:
    return float(Decimal(amount_minor).scaleb(-minor_digits(currency)))


def collect(first: date, last: date, zone: Any) -> dict[str, Any]:
    """Every figure of the page for the days first..last in ``zone`` (also the benchmark's
    workload: bench/bench_ops_stats.py times this function)."""
    start = datetime.combine(first, time.min, tzinfo=zone)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone)
    days = scheduling_stats.sessions_by_day(start, end, zone)
    lateness = access_stats.gate_lateness(start, end)
    return {
        "start": start, "end": end, "days": days,
        "totals": scheduling_stats.outcome_totals(days),
        "hours": scheduling_stats.hours_by_coach(start, end),
        "lateness": lateness,
        "provisioning": access_stats.provisioning(lateness),
        "money": billing_stats.money_by_currency(start, end),
    }


def _chart_data(figures: dict[str, Any]) -> dict[str, Any]:
    days = figures["days"]
    return {
        "sessions": {
            "labels": [d.day.isoformat() for d in days],
            "series": [
                {"label": "Booked", "data": [d.booked for d in days]},
                {"label": "Completed", "data": [d.count(S.COMPLETED) for d in days]},
                {"label": "Student no-show", "data": [d.count(S.NO_SHOW_STUDENT) for d in days]},
                {"label": "Coach no-show", "data": [d.count(S.NO_SHOW_COACH) for d in days]},
                {"label": "Cancelled", "data": [d.count(S.CANCELLED) for d in days]},
            ],
        },
        "lateness": {
            "labels": [g.kind.replace("_", " ") for g in figures["lateness"]],
            "series": [
                {"label": "p50 (s)", "data": [g.p50_ms / 1000 for g in figures["lateness"]]},
                {"label": "p99 (s)", "data": [g.p99_ms / 1000 for g in figures["lateness"]]},
            ],
        },
        "hours": {
            "labels": [h.name for h in figures["hours"]],
            "series": [
                {"label": "Booked hours", "data": [h.booked_hours for h in figures["hours"]]},
                {"label": "Offered hours", "data": [h.offered_hours for h in figures["hours"]]},
            ],
        },
        "money": {
            "labels": [m.currency for m in figures["money"]],
            "series": [
                {"label": "Revenue", "data": [_major(m.charged_minor, m.currency)
                                              for m in figures["money"]]},
                {"label": "Fees", "data": [_major(m.fee_minor, m.currency)
                                           for m in figures["money"]]},
                {"label": "Payouts", "data": [_major(m.payout_minor, m.currency)
                                              for m in figures["money"]]},
            ],
        },
    }


@admin_required
@require_GET
def statistics(request: HttpRequest) -> HttpResponse:
    zone = timezone.get_current_timezone()
    today = clock.now().astimezone(zone).date()
    first, last, preset, form = _period(request, today)
    figures = collect(first, last, zone)
    totals = figures["totals"]
    booked = totals["booked"]
    return render(request, "web/ops/statistics.html", context(
        request, form=form, first=first, last=last, preset=preset, presets=PRESETS,
        figures=figures, totals=totals, chart=_chart_data(figures),
        rates={k: (totals[k] / booked if booked else None) for k in totals},
        active_days=[d for d in figures["days"] if d.booked],
    ))


urlpatterns = [path("", statistics, name="ops_statistics")]
