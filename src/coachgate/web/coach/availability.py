"""Coach dashboard: availability. The weekly hours drawn as a week in the coach's zone, with
forms to add, move and remove ranges and to apply the morning/afternoon/evening presets;
date overrides on a month calendar; and the bookable slots of the next two weeks, computed
by the slot engine the offer page uses.

Every action is a plain form POST that redirects back (it works without JavaScript); htmx
only swaps the calendar's month and the preview's offer in place. A refused action changes
nothing and says why beside the section it came from.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST, require_safe

from coachgate.accounts.models import User
from coachgate.catalog import services as catalog
from coachgate.catalog.models import CoachProfile, Offer, OfferStatus
from coachgate.kit import clock
from coachgate.kit.errors import CoachgateError
from coachgate.scheduling import rules as slot_rules
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.models import AvailabilityOverride, WeeklyAvailability

from .common import coach_required, tabs

DAY_NAMES = list(calendar.day_name)  # Monday first, as the weekly rules count (0 = Monday)
DAY_SHORT = list(calendar.day_abbr)
WEEKDAY_CHOICES = [(str(i), name) for i, name in enumerate(DAY_NAMES)]
PRESET_LABELS = {"morning": "Morning", "afternoon": "Afternoon", "evening": "Evening"}
PREVIEW_DAYS = 14  # the offer page's window: what a student sees is what is previewed
SECTIONS = ("week", "overrides", "preview")  # where a notice is shown (extra_tags)


def _hm(t: time) -> str:
    return t.strftime("%H:%M")


class _WeekdaysMixin(forms.Form):
    weekdays = forms.TypedMultipleChoiceField(
        label="Days", choices=WEEKDAY_CHOICES, coerce=int,
        error_messages={"required": "Choose at least one day.",
                        "invalid_choice": "Choose days from Monday to Sunday."})


class RangeForm(_WeekdaysMixin):
    start = forms.TimeField(label="From")
    end = forms.TimeField(label="To")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            raise forms.ValidationError("The end must be after the start (on the same day).")
        return data


class EditRangeForm(forms.Form):
    weekday = forms.TypedChoiceField(
        label="Day", choices=WEEKDAY_CHOICES, coerce=int,
        error_messages={"invalid_choice": "Choose a day from Monday to Sunday."})
    start = forms.TimeField(label="From")
    end = forms.TimeField(label="To")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            raise forms.ValidationError("The end must be after the start (on the same day).")
        return data


class PresetForm(_WeekdaysMixin):
    preset = forms.ChoiceField(
        label="Preset", choices=list(PRESET_LABELS.items()),
        error_messages={"invalid_choice": "Choose morning, afternoon or evening."})


OVERRIDE_KINDS = [("blocked_day", "Block the whole day"), ("blocked", "Block some hours"),
                  ("extra", "Add hours")]


class OverrideForm(forms.Form):
    day = forms.DateField(label="Date")
    kind = forms.ChoiceField(
        label="Change", choices=OVERRIDE_KINDS,
        error_messages={"invalid_choice": "Choose what changes on that date."})
    start = forms.TimeField(label="From", required=False)
    end = forms.TimeField(label="To", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") in ("blocked", "extra"):
            if not data.get("start") or not data.get("end"):
                raise forms.ValidationError("Give the hours: a start and an end time.")
            if data["end"] <= data["start"]:
                raise forms.ValidationError("The end must be after the start (same day).")
        return data


def _first_error(form: forms.Form) -> str:
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else None
        return f"{label}: {errors[0]}" if label else str(errors[0])
    return "That input is not valid."


# --- reading --------------------------------------------------------------------------


def _inputs(rows: Iterable[WeeklyAvailability]) -> list[scheduling.RuleInput]:
    return [scheduling.RuleInput(r.weekday, r.start_time, r.end_time) for r in rows]


def _describe(item: scheduling.RuleInput) -> str:
    return f"{DAY_NAMES[item.weekday]} {_hm(item.start)}–{_hm(item.end)}"


def first_overlap(items: Iterable[scheduling.RuleInput]
                  ) -> tuple[scheduling.RuleInput, scheduling.RuleInput] | None:
    """Two ranges of one weekday that overlap (touching, 09–12 and 12–13, is fine)."""
    ordered = sorted(items, key=lambda i: (i.weekday, i.start, i.end))
    for a, b in pairwise(ordered):
        if a.weekday == b.weekday and b.start < a.end:
            return a, b
    return None


@dataclass(frozen=True)
class Block:
    pk: int
    weekday: int
    start: time
    end: time
    top: float  # percent of the day column
    height: float

    @property
    def start_min(self) -> int:
        return self.start.hour * 60 + self.start.minute

    @property
    def end_min(self) -> int:
        return self.end.hour * 60 + self.end.minute

    @property
    def label(self) -> str:
        return f"{_hm(self.start)}–{_hm(self.end)}"


def _week(rows: list[WeeklyAvailability]) -> tuple[list[dict[str, Any]], list[int]]:
    """Each weekday's ranges positioned on an hours axis (06–22, wider when needed)."""
    first = min([6, *(r.start_time.hour for r in rows)])
    last = max([22, *((r.end_time.hour + (1 if r.end_time.minute else 0)) for r in rows)])
    span = (last - first) * 60

    def at(t: time) -> float:
        return round(((t.hour - first) * 60 + t.minute) * 100 / span, 3)

    days = []
    for i in range(7):
        blocks = [Block(r.pk, i, r.start_time, r.end_time, at(r.start_time),
                        round(at(r.end_time) - at(r.start_time), 3))
                  for r in rows if r.weekday == i]
        days.append({"index": i, "name": DAY_NAMES[i], "short": DAY_SHORT[i], "blocks": blocks})
    return days, list(range(first, last))


def _override_text(o: AvailabilityOverride) -> str:
    if o.kind == "blocked" and o.start_time is None:
        return "Blocked all day"
    hours = f"{_hm(o.start_time)}–{_hm(o.end_time)}" if o.start_time and o.end_time else ""
    return f"Blocked {hours}" if o.kind == "blocked" else f"Extra hours {hours}"


def _month(asked: str | None, today: date) -> date:
    try:
        first = datetime.strptime(asked or "", "%Y-%m").date()  # noqa: DTZ007 - a calendar month, no instant
    except ValueError:
        return today.replace(day=1)
    if not clock.EARLIEST.year < first.year < clock.LATEST.year:
        return today.replace(day=1)
    return first


def _shift_month(first: date, months: int) -> date:
    n = first.year * 12 + first.month - 1 + months
    return date(n // 12, n % 12 + 1, 1)


def _calendar(first: date, today: date, overrides: list[AvailabilityOverride],
              weekly_days: set[int]) -> list[list[dict[str, Any]]]:
    by_day: dict[date, list[AvailabilityOverride]] = {}
    for o in overrides:
        by_day.setdefault(o.day, []).append(o)
    weeks = []
    for week in calendar.Calendar(firstweekday=0).monthdatescalendar(first.year, first.month):
        cells = []
        for d in week:
            marks = []
            for o in by_day.get(d, []):
                if o.kind == "blocked" and o.start_time is None:
                    marks.append(("off", "Blocked all day"))
                elif o.kind == "blocked":
                    marks.append(("cut", _override_text(o)))
                else:
                    marks.append(("add", _override_text(o)))
            cells.append({"day": d, "in_month": d.month == first.month, "today": d == today,
                          "past": d < today, "marks": marks,
                          "weekly": d.weekday() in weekly_days})
        weeks.append(cells)
    return weeks


def _preview(actor: User, profile: CoachProfile, offers: list[Offer], asked: str | None,
             now: datetime, tz: ZoneInfo, weekly: list[WeeklyAvailability],
             overrides: list[AvailabilityOverride]) -> dict[str, Any]:
    chosen: Offer | None = None
    if asked is None:  # the first published offer, else the first draft
        chosen = next((o for o in offers if o.status == OfferStatus.PUBLISHED),
                      offers[0] if offers else None)
    elif asked:
        chosen = next((o for o in offers if str(o.pk) == asked), None)
    end = now + timedelta(days=PREVIEW_DAYS)
    days: dict[date, list[tuple[str, str]]] = {}  # local day: (shown time, UTC start)
    if chosen is not None:
        if chosen.status == OfferStatus.PUBLISHED:  # exactly the offer page's call
            page = scheduling.slot_page(actor, chosen, start=now, end=end, now=now,
                                        limit=scheduling.MAX_SLOT_LIMIT)
        else:
            page = scheduling.preview_slots(actor, chosen, start=now, end=end, now=now)
        for s in page.slots:
            local = s.start.astimezone(tz)
            days.setdefault(local.date(), []).append((_hm(local.time()), s.start.isoformat()))
        return {"offer": chosen, "days": list(days.items()), "more": page.next_start,
                "count": len(page.slots), "mode": chosen.status}
    weekly_rules = [slot_rules.WeeklyRule(r.weekday, r.start_time, r.end_time) for r in weekly]
    override_rules = [slot_rules.DateOverride(o.day, o.kind,  # type: ignore[arg-type]  # kind: the model's choices, 'blocked' or 'extra'
                                              o.start_time, o.end_time) for o in overrides]
    today = now.astimezone(tz).date()
    for i in range(PREVIEW_DAYS):
        d = today + timedelta(days=i)
        ranges = slot_rules.wall_intervals_for_date(d, weekly_rules, override_rules)
        if ranges:
            days[d] = [(f"{_hm(a)}–{_hm(b)}", "") for a, b in ranges]
    return {"offer": None, "days": list(days.items()), "more": None,
            "count": sum(len(v) for v in days.values()), "mode": "hours"}


@coach_required
@require_safe
def availability_page(request: HttpRequest) -> HttpResponse:
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by coach_required
    actor: User = request.coach  # type: ignore[attr-defined]  # set by coach_required
    tz = ZoneInfo(profile.timezone)
    now = clock.now()
    today = now.astimezone(tz).date()
    weekly = scheduling.weekly_availability(profile)
    overrides = scheduling.list_overrides(profile)
    days, hours = _week(weekly)
    month = _month(request.GET.get("month"), today)
    offers = list(catalog.visible_offers(actor).filter(coach=profile)
                  .exclude(status=OfferStatus.ARCHIVED).order_by("-status", "title", "pk"))
    notices: dict[str, list[Any]] = {s: [] for s in SECTIONS}
    others: list[Any] = []
    for m in messages.get_messages(request):
        notices.get(m.extra_tags, others).append(m)
    prefill = request.GET.get("day", "")
    return render(request, "web/coach/availability.html", {
        "tabs": tabs(request), "profile": profile, "zone": profile.timezone,
        "days": days, "hours": hours, "weekday_choices": WEEKDAY_CHOICES,
        "presets": [(k, v, *map(_hm, slot_rules.PRESETS[k])) for k, v in PRESET_LABELS.items()],
        "month": month, "prev_month": _shift_month(month, -1),
        "next_month": _shift_month(month, 1),
        "weeks": _calendar(month, today, overrides, {r.weekday for r in weekly}),
        "day_short": DAY_SHORT,
        "upcoming": [(o, _override_text(o)) for o in overrides if o.day >= today],
        "past_count": sum(1 for o in overrides if o.day < today),
        "override_kinds": OVERRIDE_KINDS, "today": today,
        "prefill_day": prefill if len(prefill) == 10 else "",
        "offers": offers,
        "preview": _preview(actor, profile, offers, request.GET.get("offer"), now, tz, weekly,
                            overrides),
        "preview_end": now + timedelta(days=PREVIEW_DAYS),
        "notices": notices, "messages": others,
    })


# --- actions --------------------------------------------------------------------------


def _back(section: str, **query: str) -> HttpResponseRedirect:
    url = reverse("coach_availability")
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    anchors = {"week": "#weekly-hours", "overrides": "#overrides", "preview": "#preview"}
    return HttpResponseRedirect(url + anchors[section])


def _refuse(request: HttpRequest, section: str, text: str, **query: str) -> HttpResponse:
    messages.error(request, f"{text} Nothing was changed.", extra_tags=section)
    return _back(section, **query)


def _replace_week(request: HttpRequest, items: list[scheduling.RuleInput], done: str
                  ) -> HttpResponse:
    clash = first_overlap(items)
    if clash:
        return _refuse(request, "week",
                       f"{_describe(clash[1])} overlaps {_describe(clash[0])}.")
    try:
        scheduling.set_weekly_availability(request.user, items)  # type: ignore[arg-type]  # coach_required: a User
    except CoachgateError as exc:
        return _refuse(request, "week", exc.message)
    messages.success(request, done, extra_tags="week")
    return _back("week")


@coach_required
@require_POST
def add_range(request: HttpRequest) -> HttpResponse:
    form = RangeForm(request.POST)
    if not form.is_valid():
        return _refuse(request, "week", _first_error(form))
    current = _inputs(scheduling.weekly_availability(request.profile))  # type: ignore[attr-defined]  # set by coach_required
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    new = [scheduling.RuleInput(d, start, end) for d in sorted(set(form.cleaned_data["weekdays"]))]
    names = ", ".join(DAY_NAMES[i.weekday] for i in new)
    return _replace_week(request, current + new, f"Added {_hm(start)}–{_hm(end)} on {names}.")


@coach_required
@require_POST
def edit_range(request: HttpRequest, range_id: int) -> HttpResponse:
    form = EditRangeForm(request.POST)
    if not form.is_valid():
        return _refuse(request, "week", _first_error(form))
    rows = scheduling.weekly_availability(request.profile)  # type: ignore[attr-defined]  # set by coach_required
    if not any(r.pk == range_id for r in rows):
        return _refuse(request, "week", "That range is no longer there (the week changed "
                                        "meanwhile); here is the current week.")
    moved = scheduling.RuleInput(form.cleaned_data["weekday"], form.cleaned_data["start"],
                                 form.cleaned_data["end"])
    items = [moved if r.pk == range_id else scheduling.RuleInput(r.weekday, r.start_time,
                                                                 r.end_time) for r in rows]
    return _replace_week(request, items, f"Changed to {_describe(moved)}.")


@coach_required
@require_POST
def remove_range(request: HttpRequest, range_id: int) -> HttpResponse:
    rows = scheduling.weekly_availability(request.profile)  # type: ignore[attr-defined]  # set by coach_required
    gone = [r for r in rows if r.pk == range_id]
    if not gone:
        return _refuse(request, "week", "That range is no longer there; here is the current "
                                        "week.")
    kept = _inputs(r for r in rows if r.pk != range_id)
    return _replace_week(request, kept, f"Removed {_describe(_inputs(gone)[0])}.")


@coach_required
@require_POST
def apply_preset(request: HttpRequest) -> HttpResponse:
    form = PresetForm(request.POST)
    if not form.is_valid():
        return _refuse(request, "week", _first_error(form))
    preset, weekdays = form.cleaned_data["preset"], sorted(set(form.cleaned_data["weekdays"]))
    start, end = slot_rules.PRESETS[preset]
    current = _inputs(scheduling.weekly_availability(request.profile))  # type: ignore[attr-defined]  # set by coach_required
    wanted = [scheduling.RuleInput(d, start, end) for d in weekdays]
    clash = first_overlap(current + [w for w in wanted if w not in current])
    if clash:
        return _refuse(request, "week", f"{_describe(clash[1])} overlaps {_describe(clash[0])}.")
    try:
        scheduling.apply_preset(request.user, weekdays, preset)  # type: ignore[arg-type]  # coach_required: a User
    except CoachgateError as exc:
        return _refuse(request, "week", exc.message)
    names = ", ".join(DAY_NAMES[d] for d in weekdays)
    messages.success(request, f"{PRESET_LABELS[preset]} ({_hm(start)}–{_hm(end)}) on {names}.",
                     extra_tags="week")
    return _back("week")


@coach_required
@require_POST
def add_override(request: HttpRequest) -> HttpResponse:
    form = OverrideForm(request.POST)
    if not form.is_valid():
        return _refuse(request, "overrides", _first_error(form))
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by coach_required
    day: date = form.cleaned_data["day"]
    month = {"month": day.strftime("%Y-%m")}
    today = clock.now().astimezone(ZoneInfo(profile.timezone)).date()
    if day < today:
        return _refuse(request, "overrides", "That date is in the past.")
    kind = form.cleaned_data["kind"]
    start = end = None
    if kind != "blocked_day":
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    same_day = [o for o in scheduling.list_overrides(profile) if o.day == day]
    if kind == "blocked_day" and any(o.kind == "blocked" and o.start_time is None
                                     for o in same_day):
        return _refuse(request, "overrides", f"{day:%A %d %B %Y} is already blocked.", **month)
    if kind != "blocked_day" and any(
            o.kind == kind and o.start_time is not None and o.end_time is not None
            and start is not None and end is not None
            and o.start_time < end and start < o.end_time for o in same_day):
        return _refuse(request, "overrides",
                       f"These hours overlap a change already set on {day:%A %d %B %Y}.",
                       **month)
    try:
        scheduling.add_override(request.user, day=day,  # type: ignore[arg-type]  # coach_required: a User
                                kind="blocked" if kind == "blocked_day" else kind,
                                start=start, end=end)
    except CoachgateError as exc:
        return _refuse(request, "overrides", exc.message, **month)
    what = dict(OVERRIDE_KINDS)[kind].lower()
    hours = f" {_hm(start)}–{_hm(end)}" if start and end else ""
    messages.success(request, f"{day:%A %d %B %Y}: {what}{hours}.", extra_tags="overrides")
    return _back("overrides", **month)


@coach_required
@require_POST
def remove_override(request: HttpRequest, override_id: int) -> HttpResponse:
    try:
        scheduling.delete_override(request.user, override_id)  # type: ignore[arg-type]  # coach_required: a User
    except CoachgateError as exc:
        return _refuse(request, "overrides", exc.message)
    messages.success(request, "Date change removed.", extra_tags="overrides")
    return _back("overrides", **({"month": m} if (m := request.POST.get("month", ""))
                                 and len(m) == 7 and m[4] == "-" and m.replace("-", "").isdigit()
                                 else {}))


urlpatterns: list[URLPattern] = [
    path("availability/", availability_page, name="coach_availability"),
    path("availability/ranges/add", add_range, name="coach_range_add"),
    path("availability/ranges/<int:range_id>/edit", edit_range, name="coach_range_edit"),
    path("availability/ranges/<int:range_id>/remove", remove_range, name="coach_range_remove"),
    path("availability/presets", apply_preset, name="coach_preset"),
    path("availability/overrides/add", add_override, name="coach_override_add"),
    path("availability/overrides/<int:override_id>/remove", remove_override,
         name="coach_override_remove"),
]
