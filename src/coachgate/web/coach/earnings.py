"""Coach dashboard: earnings (/coach/earnings/): what the platform owes the coach, the
settlements per month, the payouts recorded, seats and packs in use, and the statement for
a period as CSV or JSON (/coach/earnings/statement): the same service and the same document
as the API's /api/v1/coaches/<id>/statement, so the two always agree."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils import timezone
from django.views.decorators.http import require_safe

from coachgate.accounts.models import User
from coachgate.billing import ledger
from coachgate.billing import services as billing
from coachgate.catalog.models import CoachProfile
from coachgate.kit import clock
from coachgate.kit.config import conf
from coachgate.kit.errors import CoachgateError
from coachgate.kit.money import format_amount
from coachgate.packs import services as packs

from .common import coach_required, tabs

MONTHS = 12  # settlements per month: this month and the eleven before
PACKS_SHOWN = 50
PAYOUTS_SHOWN = 50


class StatementForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}),
                            help_text="The first day of the statement.")
    end = forms.DateField(label="To (included)", widget=forms.DateInput(attrs={"type": "date"}),
                          help_text="The last day of the statement.")
    currency = forms.ChoiceField(label="Currency")

    def __init__(self, *args: Any, currencies: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["currency"]
        if isinstance(field, forms.ChoiceField):  # always: declared above
            field.choices = [(c, c) for c in currencies]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if isinstance(start, date) and isinstance(end, date):
            if end < start:
                self.add_error("end", "The last day comes on or after the first.")
            elif (end - start).days >= 366:
                self.add_error("end", "A statement covers at most 366 days.")
        return data


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.get_current_timezone())


def _month_start(now: datetime, months_back: int) -> datetime:
    local = now.astimezone(timezone.get_current_timezone()).date().replace(day=1)
    for _ in range(months_back):
        local = (local - timedelta(days=1)).replace(day=1)
    return _local_midnight(local)


def _currencies(user: User, profile: CoachProfile) -> list[str]:
    found = billing.coach_currencies(user, profile.pk)
    return found or [conf().DEFAULT_CURRENCY]


STATEMENT_LINES_SHOWN = 100
_KINDS = {"settle": "Settlement", "payout": "Payout", "refund": "Refund"}


def _shown(st: ledger.Statement) -> dict[str, Any]:
    money = {k: format_amount(getattr(st, f"{k}_minor"), st.currency)
             for k in ("opening", "earned", "paid_out", "closing")}
    return {"st": st, "money": money, "more": max(0, len(st.lines) - STATEMENT_LINES_SHOWN),
            "lines": [(line, _KINDS.get(line.kind, line.kind.replace("_", " ").capitalize()),
                       line.memo.removeprefix(f"{line.kind} "),
                       format_amount(line.amount_minor, st.currency))
                      for line in st.lines[:STATEMENT_LINES_SHOWN]],
            "last_day": st.end - timedelta(days=1)}


def _page(request: HttpRequest, form: StatementForm, status: int = 200,
          statement: dict[str, Any] | None = None) -> HttpResponse:
    user: User = request.coach  # type: ignore[attr-defined]  # set by @coach_required
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by @coach_required
    now = clock.now()
    balances = billing.coach_balances(user, profile.pk)
    months = billing.earnings_by_month(user, profile.pk, tz=timezone.get_current_timezone(),
                                       since=_month_start(now, MONTHS - 1))
    payouts = billing.coach_payouts(user, profile.pk, limit=PAYOUTS_SHOWN)
    seats = packs.coach_seats(user)
    active = packs.visible_packs(user).filter(status="active").order_by("-purchased_at", "-pk")
    return render(request, "web/coach/earnings_page.html", {
        "tabs": tabs(request), "now": now, "form": form,
        "balances": [(cur, format_amount(v, cur)) for cur, v in sorted(balances.items())],
        "months": [(m, format_amount(m.charged_minor, m.currency),
                    format_amount(m.fee_minor, m.currency),
                    format_amount(m.payout_minor, m.currency)) for m in months],
        "payouts": [(p, format_amount(p.amount_minor, p.currency)) for p in payouts],
        "seats": seats, "packs": list(active[:PACKS_SHOWN]), "packs_total": active.count(),
        "months_shown": MONTHS, "statement": statement,
    }, status=status)


@coach_required
@require_safe
def earnings(request: HttpRequest) -> HttpResponse:
    user: User = request.coach  # type: ignore[attr-defined]  # set by @coach_required
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by @coach_required
    today = clock.now().astimezone(timezone.get_current_timezone()).date()
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    currencies = _currencies(user, profile)
    form = StatementForm(currencies=currencies,
                         initial={"start": first, "end": last, "currency": currencies[0]})
    return _page(request, form)


@coach_required
@require_safe
def statement(request: HttpRequest) -> HttpResponse:
    """The statement download. Bad input shows the earnings page with the form's errors."""
    user: User = request.coach  # type: ignore[attr-defined]  # set by @coach_required
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by @coach_required
    form = StatementForm(request.GET, currencies=_currencies(user, profile))
    fmt = request.GET.get("format", "csv")
    if fmt not in ("csv", "json", "page"):
        form.add_error(None, "Download the statement as CSV or JSON.")
    if not form.is_valid():
        return _page(request, form, status=400)
    start = _local_midnight(form.cleaned_data["start"])
    end = _local_midnight(form.cleaned_data["end"] + timedelta(days=1))
    currency = form.cleaned_data["currency"]
    try:
        st = billing.coach_statement(user, profile.pk, start=start, end=end, currency=currency)
    except CoachgateError as exc:
        messages.error(request, exc.message)
        return _page(request, form, status=400)
    name = (f"statement-coach{profile.pk}-{form.cleaned_data['start']:%Y%m%d}-"
            f"{form.cleaned_data['end']:%Y%m%d}-{currency}")
    response: HttpResponse
    if fmt == "page":  # shown on the earnings page, the first lines of it
        return _page(request, form, statement=_shown(st))
    if fmt == "csv":
        response = HttpResponse(ledger.statement_csv(st), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    else:
        response = JsonResponse(billing.statement_document(profile.pk, st),
                                encoder=DjangoJSONEncoder)
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response


urlpatterns: list[URLPattern] = [
    path("earnings/", earnings, name="coach_earnings"),
    path("earnings/statement", statement, name="coach_statement"),
]
