"""Coach dashboard: the offers list and the four-step offer wizard.

The wizard's steps are picture → checkout → availability and booking rules → options, as
in the design notes. Each step saves: a new offer's picture choice waits in the session
until the checkout step creates the offer as a draft (catalog.services.create_offer), and
every later step updates it (update_offer), so a reload or another day resumes at
``/coach/offers/<id>/edit/<step>/``. Every service error is shown on the step's form with
the coach's answers kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.forms import formset_factory
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from coachgate.accounts import discord
from coachgate.accounts.models import User
from coachgate.billing import rules as billing_rules
from coachgate.billing import services as billing
from coachgate.catalog import rules as catalog_rules
from coachgate.catalog import services as catalog
from coachgate.catalog import thumbnails
from coachgate.catalog.models import Delivery, Offer, OfferStatus, SessionType
from coachgate.kit import clock, money
from coachgate.kit.errors import CoachgateError, InvalidInput, NotFound
from coachgate.scheduling import services as scheduling

from .common import coach_required, tabs

STEPS = [("thumbnail", "Picture"), ("checkout", "Checkout"),
         ("availability", "Availability"), ("options", "Options")]
STEP_NAMES = [s for s, _ in STEPS]
NEW_KEY = "offer_wizard_new"  # the session's record of a new offer's picture step
CURRENCIES = [c for c in ("USD", "EUR", "GBP", "CAD", "AUD", "NZD", "CHF", "SEK", "NOK", "DKK",
                          "PLN", "CZK", "JPY", "SGD", "HKD", "INR", "BRL", "MXN", "ZAR", "KWD")
              if money.is_currency(c)]
STYLE_LABELS = {"ocean": "Ocean", "sunset": "Sunset", "forest": "Forest", "violet": "Violet",
                "slate": "Slate"}
SLOT_DAYS = 14
PAGE_SIZE = 24  # offers per page of one status
GROUP_SIZE = 6  # offers per status on the "all" view
DISCORD_MISSING = ("Discord delivery needs the platform's Discord server, and an admin has "
                   "not set it up yet. Choose another delivery, or ask an admin.")
VIDEO_NOTE = ("Zoom, Google Meet and Jitsi: coachgate does not create the meeting link yet; "
              "send yours to the student.")


def _int_field(name: str, label: str, *, required: bool = True, help_text: str = "",
               initial: int | None = None) -> forms.IntegerField:
    """An integer field with the bounds catalog.rules holds for the offer field ``name``."""
    low, high, _ = catalog_rules.OFFER_INT_BOUNDS[name]
    return forms.IntegerField(label=label, required=required, help_text=help_text,
                              initial=initial, min_value=low, max_value=high)


def _me(request: HttpRequest) -> User:
    user: User = request.coach  # type: ignore[attr-defined]  # set by coach_required
    return user


# --- money -----------------------------------------------------------------------------

_AMOUNT = re.compile(r"([0-9]{1,15})(?:[.,]([0-9]{1,9}))?")
MAX_PRICE_MINOR = catalog_rules.OFFER_INT_BOUNDS["price_minor"][1]


def to_minor(text: str, currency: str) -> int:
    """'49.99' USD -> 4999; '500' JPY -> 500; '1.5' KWD -> 1500. ValueError with a message a
    coach understands for anything else (a sign, an exponent, too many decimals)."""
    m = _AMOUNT.fullmatch(text.strip().replace(" ", ""))
    if m is None:
        raise ValueError("Enter an amount such as 49.99: digits and at most one decimal point.")
    digits = money.minor_digits(currency)
    whole, fraction = m.group(1), (m.group(2) or "").rstrip("0")
    if len(fraction) > digits:
        raise ValueError(f"{currency} has no decimals: enter a whole amount." if digits == 0
                         else f"{currency} has {digits} decimals at most.")
    minor = int(whole) * int(10**digits) + int(fraction.ljust(digits, "0") or "0")
    if minor > MAX_PRICE_MINOR:
        raise ValueError(f"The price is too large (at most "
                         f"{money.format_amount(MAX_PRICE_MINOR, currency)}).")
    return minor


def amount_text(minor: int, currency: str) -> str:
    return money.format_amount(minor, currency).rsplit(" ", 1)[0]


# --- the policy sentence ---------------------------------------------------------------

def _span(seconds: int) -> str:
    """3600 -> '1 h'; 5400 -> '1 h 30 min'; 45 -> '45 s'; 86400 -> '24 h'."""
    if seconds % 60:
        return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60} s"
    minutes = seconds // 60
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


@dataclass(frozen=True)
class PolicyText:
    headline: str
    money_lines: list[str]
    access_lines: list[str]


def policy_text(*, duration: int, price_minor: int, currency: str, pack_size: int,
                discord_delivery: bool, access: catalog_rules.AccessPolicy,
                money_policy: catalog_rules.MoneyPolicy) -> PolicyText:
    """What the policies mean for this offer in minutes and amounts, computed by the same
    rules that settle and gate its sessions (billing.rules, the platform's percentages,
    the gateway's quantum)."""
    t = billing_rules.thresholds(duration, money_policy.no_show_wait_ratio,
                                 money_policy.min_payable_ratio)
    q = money.quantum(currency)
    value = (billing_rules.pack_session_values(price_minor, pack_size, q)[0]
             if pack_size > 1 else price_minor)
    pct = billing.percentages()
    no_show = billing_rules.settle(billing_rules.Outcome.NO_SHOW_STUDENT, value, pct, q)
    done = billing_rules.settle(billing_rules.Outcome.COMPLETED, value, pct, q)

    def fmt(minor: int) -> str:
        return money.format_amount(minor, currency)

    headline = (f"{duration} min: no-show button after {t.no_show_wait_minutes} min, early "
                f"end below {t.min_payable_minutes} min, no-show charge {fmt(no_show.charge)}")
    of_pack = f" (one session of the pack, worth {fmt(value)})" if pack_size > 1 else ""
    money_lines = [
        f"Completed{of_pack}: the student pays {fmt(done.charge)}; you receive "
        f"{fmt(done.payout)} after the platform fee of {fmt(done.fee)}.",
        f"Student absent (you may mark it {t.no_show_wait_minutes} min after the start): "
        f"the student pays {fmt(no_show.charge)}; you receive {fmt(no_show.payout)}.",
        f"Meeting ended before {t.min_payable_minutes} min, or you did not come: nothing is "
        "charged.",
    ]
    reminders = " and ".join(_span(s) for s in access.reminders_before_s)
    access_lines = [
        f"Access opens {_span(access.grant_before_s)} before the start; the join button "
        f"appears {_span(access.join_window_before_s)} before.",
        f"Reminders: {reminders} before the start." if reminders else "No reminders.",
        f"Access closes {_span(access.revoke_after_s)} after the end"
        + ((", and the Discord channel is " + ("archived." if access.end_action == "archive"
                                               else "deleted."))
           if discord_delivery else "."),
    ]
    return PolicyText(headline, money_lines, access_lines)


def offer_policy_text(offer: Offer) -> PolicyText | None:
    try:
        return policy_text(
            duration=offer.duration_minutes, price_minor=offer.price_minor,
            currency=offer.currency, pack_size=offer.pack_size,
            discord_delivery=offer.delivery == Delivery.DISCORD_VOICE,
            access=catalog_rules.parse_access_policy(offer.access_policy),
            money_policy=catalog_rules.parse_money_policy(offer.money_policy))
    except (CoachgateError, ValueError):  # a policy stored before validation existed
        return None


# --- forms ---------------------------------------------------------------------------

class ThumbnailForm(forms.Form):
    card_style = forms.ChoiceField(
        label="Card style", widget=forms.RadioSelect,
        choices=[(s, STYLE_LABELS.get(s, s.title())) for s in catalog_rules.CARD_STYLES],
        help_text="Shown when there is no picture.")
    picture = forms.FileField(
        label="Picture (optional)", required=False,
        help_text="JPEG, PNG or WebP, at most 5 MB and 20 megapixels. It is cropped to 16:9.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}))
    remove_picture = forms.BooleanField(label="Remove the picture", required=False)


class CheckoutForm(forms.Form):
    title = forms.CharField(label="Title", max_length=160)
    description = forms.CharField(label="Description", required=False, max_length=20000,
                                  widget=forms.Textarea(attrs={"rows": 4}))
    price = forms.CharField(label="Price", max_length=32,
                            help_text="For example 49.99. 0 makes the offer free.")
    currency = forms.ChoiceField(label="Currency")
    duration_minutes = _int_field("duration_minutes", "Duration (minutes)")
    session_type = forms.ChoiceField(label="Session type", choices=SessionType.choices)
    delivery = forms.ChoiceField(label="Delivery", help_text=VIDEO_NOTE)
    capacity = _int_field("capacity", "Capacity", initial=1,
                          help_text="1 = one-to-one; more = a group session.")
    pack_size = _int_field("pack_size", "Pack size", initial=1,
                           help_text="1 = a single session; N = a pack of N sessions bought "
                                     "together.")

    def __init__(self, *args: Any, current_currency: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        codes = list(CURRENCIES)
        if current_currency and current_currency not in codes:
            codes.insert(0, current_currency)  # an offer made through the API keeps its own
        self.fields["currency"].choices = [(c, c) for c in codes]  # type: ignore[attr-defined]  # a ChoiceField
        self.fields["currency"].widget.attrs["data-digits"] = ",".join(
            f"{c}:{money.minor_digits(c)}" for c in codes if money.is_currency(c))
        configured = discord.guild_settings() is not None
        self.discord_configured = configured
        self.fields["delivery"].choices = [  # type: ignore[attr-defined]  # a ChoiceField
            (v, label if v != Delivery.DISCORD_VOICE or configured
             else f"{label} (not set up on this platform)")
            for v, label in Delivery.choices]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "price" in data and "currency" in data:
            try:
                data["price_minor"] = to_minor(data["price"], data["currency"])
            except ValueError as exc:
                self.add_error("price", str(exc))
        if data.get("delivery") == Delivery.DISCORD_VOICE and not self.discord_configured:
            self.add_error("delivery", DISCORD_MISSING)
        return data


class IntakeRowForm(forms.Form):
    key = forms.CharField(required=False, max_length=60, widget=forms.HiddenInput)
    label = forms.CharField(label="Question", required=False, max_length=200)
    type = forms.ChoiceField(label="Answer type", choices=[
        ("text", "Short text"), ("textarea", "Long text"), ("number", "Number"),
        ("email", "Email"), ("url", "Web address"), ("choice", "Choice"),
        ("checkbox", "Checkbox")])
    required = forms.BooleanField(label="Required", required=False)
    choices = forms.CharField(label="Choices (separated by commas)", required=False,
                              max_length=5000)


class _IntakeRows(forms.BaseFormSet):  # type: ignore[type-arg]  # rows of IntakeRowForm
    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove"


IntakeFormSet = formset_factory(IntakeRowForm, formset=_IntakeRows, extra=0, can_delete=True,
                                max_num=catalog_rules.MAX_INTAKE_FIELDS, validate_max=True,
                                absolute_max=catalog_rules.MAX_INTAKE_FIELDS)


class RulesForm(forms.Form):
    buffer_before_minutes = _int_field("buffer_before_minutes", "Buffer before (minutes)",
                                       help_text="Free time kept before each session.")
    buffer_after_minutes = _int_field("buffer_after_minutes", "Buffer after (minutes)",
                                      help_text="Free time kept after each session.")
    min_notice_minutes = _int_field(
        "min_notice_minutes", "Minimum notice (minutes)",
        help_text="How long before the start a student may still book (120 = 2 hours).")
    horizon_days = _int_field("horizon_days", "Booking horizon (days)",
                              help_text="How far ahead students may book.")
    max_sessions_per_day = _int_field("max_sessions_per_day", "Daily cap (sessions)",
                                      required=False, help_text="Empty: no cap.")
    slot_step_minutes = _int_field(
        "slot_step_minutes", "Slot step (minutes)", required=False,
        help_text="How far apart start times are. Empty: the session's duration.")
    free_cancellation_hours = _int_field(
        "free_cancellation_hours", "Free cancellation until (hours before)",
        help_text="A later cancellation by the student is settled as a no-show.")


_MAX_POLICY_MINUTES = catalog_rules.MAX_POLICY_SECONDS // 60
_ACCESS_MINUTES = ("grant_before_s", "join_window_before_s", "revoke_after_s")
_MINUTES = re.compile(r"[0-9]{1,6}")  # ASCII digits only: "²".isdigit() holds, int() fails


class OptionsForm(forms.Form):
    grant_before_s = forms.IntegerField(
        label="Access opens (minutes before the start)", min_value=0,
        max_value=_MAX_POLICY_MINUTES)
    join_window_before_s = forms.IntegerField(
        label="Join button appears (minutes before the start)", min_value=0,
        max_value=_MAX_POLICY_MINUTES)
    revoke_after_s = forms.IntegerField(
        label="Access closes (minutes after the end)", min_value=0,
        max_value=_MAX_POLICY_MINUTES)
    reminders = forms.CharField(
        label="Reminders (minutes before the start)", required=False, max_length=100,
        help_text="Separated by commas, at most 5: 1440, 15 is a day and a quarter of an "
                  "hour before. Empty: no reminders.")
    end_action = forms.ChoiceField(
        label="After access closes, the Discord channel is",
        choices=[("delete", "Deleted"), ("archive", "Archived (kept read-only)")])
    discord_mode = forms.ChoiceField(label="Discord access by", choices=[
        ("member_overwrites", "Channel permissions per person (recommended)"),
        ("session_role", "A role per session"),
        ("offer_role", "One role for the whole offer")])
    no_show_wait_ratio = forms.CharField(
        label="No-show wait (share of the duration)", max_length=13,
        help_text="A fraction like 1/3 or a decimal like 0.25: after it, you may mark the "
                  "student absent.")
    min_payable_ratio = forms.CharField(
        label="Minimum payable (share of the duration)", max_length=13,
        help_text="A meeting that ends before it is not charged.")

    def clean_reminders(self) -> list[int]:
        text = self.cleaned_data.get("reminders", "")
        out: list[int] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if not _MINUTES.fullmatch(part) or int(part) > _MAX_POLICY_MINUTES:
                raise forms.ValidationError(
                    f"Each reminder is a whole number of minutes up to {_MAX_POLICY_MINUTES} "
                    "(30 days).")
            out.append(int(part))
        if len(out) > catalog_rules.MAX_REMINDERS:
            raise forms.ValidationError(
                f"At most {catalog_rules.MAX_REMINDERS} reminders.")
        return out


# --- helpers -------------------------------------------------------------------------

def _own_offer(request: HttpRequest, offer_id: int) -> Offer:
    """The coach's own offer, else a 404 (another coach's offer is not theirs to see here)."""
    try:
        offer = catalog.get_offer(_me(request), offer_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if offer.coach.user_id != _me(request).pk:
        raise Http404("No such offer.")
    return offer


def _picture_url(name: str) -> str:
    return reverse("offer_picture", args=[name]) if name else ""


def _card(offer: Offer | None, pending: dict[str, str] | None = None) -> dict[str, Any]:
    """What the preview card shows, from the saved offer (or a new offer's picture step)."""
    if offer is None:
        pending = pending or {}
        return {"title": "", "description": "", "price": "", "duration": "",
                "delivery": "", "style": pending.get("card_style", "ocean"),
                "picture": _picture_url(pending.get("thumbnail", "")), "extras": ""}
    extras = []
    if offer.capacity > 1:
        extras.append(f"group of {offer.capacity}")
    if offer.pack_size > 1:
        extras.append(f"pack of {offer.pack_size}")
    try:
        price = money.format_amount(offer.price_minor, offer.currency)
    except ValueError:
        price = f"{offer.price_minor} {offer.currency}"
    return {"title": offer.title, "description": offer.description, "price": price,
            "duration": f"{offer.duration_minutes} min",
            "delivery": offer.get_delivery_display(),
            "style": offer.card_style if offer.card_style in catalog_rules.CARD_STYLES
            else "ocean",
            "picture": _picture_url(offer.thumbnail), "extras": " · ".join(extras)}


def _apply_service_error(form: forms.Form, exc: CoachgateError,
                         aliases: dict[str, str] | None = None) -> None:
    """A service's refusal on the field it names (when the form has it), else on top."""
    name = str(exc.details.get("field", "")).split(".")[0].split("[")[0]
    name = (aliases or {}).get(name, name)
    if name in form.fields:
        form.add_error(name, exc.message)
    else:
        form.add_error(None, exc.message)


def _steps_nav(offer: Offer | None, current: str) -> list[dict[str, Any]]:
    out = []
    for i, (name, label) in enumerate(STEPS):
        if offer is not None:
            url = reverse("coach_offer_edit", args=[offer.pk, name])
        elif name in ("thumbnail", "checkout"):
            url = reverse("coach_offer_new", args=[name])
        else:
            url = ""
        out.append({"name": name, "label": label, "number": i + 1, "url": url,
                    "current": name == current})
    return out


def _next_url(offer: Offer, step: str) -> str:
    i = STEP_NAMES.index(step)
    return reverse("coach_offer_edit", args=[offer.pk, STEP_NAMES[min(i + 1, 3)]])


def _remember(request: HttpRequest, offer: Offer, step: str) -> None:
    i = STEP_NAMES.index(step)
    request.session[f"offer_wizard_{offer.pk}"] = STEP_NAMES[min(i + 1, 3)]


# --- the list ------------------------------------------------------------------------

STATUS_LABELS: dict[str, str] = {"draft": "Drafts", "published": "Published",
                                 "archived": "Archived"}
STATUS_BADGES: dict[str, str] = {"draft": "badge-warn", "published": "badge-ok",
                                 "archived": ""}


def _rows(request: HttpRequest, offers: list[Offer]) -> list[dict[str, Any]]:
    now = clock.now()
    counts = scheduling.offer_booking_counts(_me(request), [o.pk for o in offers], now=now)
    rows = []
    for offer in offers:
        slots = _slot_count(request, offer)
        booked = counts.get(offer.pk)
        rows.append({"offer": offer, "card": _card(offer), "slots": slots,
                     "bookings": booked.total if booked else 0,
                     "upcoming": booked.upcoming if booked else 0,
                     "badge": STATUS_BADGES.get(offer.status, ""),
                     "status_label": offer.get_status_display()})
    return rows


@require_safe
@coach_required
def offers_list(request: HttpRequest) -> HttpResponse:
    mine = catalog.visible_offers(_me(request)).filter(coach__user=_me(request))
    totals: dict[str, int] = {s: 0 for s in STATUS_LABELS}
    for status in mine.values_list("status", flat=True):
        totals[status] = totals.get(status, 0) + 1
    wanted = request.GET.get("status", "")
    filters = [("", "All", sum(totals.values()), not wanted)] + [
        (s, label, totals.get(s, 0), wanted == s) for s, label in STATUS_LABELS.items()]
    groups = []
    page_obj = None
    if wanted in STATUS_LABELS:
        paginator = Paginator(mine.filter(status=wanted).order_by("-updated_at", "-pk"),
                              PAGE_SIZE)
        page_obj = paginator.get_page(request.GET.get("page"))
        groups.append({"status": wanted, "label": STATUS_LABELS[wanted],
                       "rows": _rows(request, list(page_obj.object_list)),
                       "total": totals[wanted], "more": False})
    else:
        for status, label in STATUS_LABELS.items():
            if not totals.get(status):
                continue
            chunk = list(mine.filter(status=status).order_by("-updated_at", "-pk")[:GROUP_SIZE])
            groups.append({"status": status, "label": label, "rows": _rows(request, chunk),
                           "total": totals[status], "more": totals[status] > len(chunk)})
    return render(request, "web/coach/offers_list.html", {
        "tabs": tabs(request), "filters": filters, "groups": groups, "page_obj": page_obj,
        "wanted": wanted, "slot_days": SLOT_DAYS, "empty": not sum(totals.values())})


# --- the wizard ------------------------------------------------------------------------

def _render_step(request: HttpRequest, offer: Offer | None, step: str,
                 ctx: dict[str, Any], status: int = 200) -> HttpResponse:
    pending = request.session.get(NEW_KEY) if offer is None else None
    base = {"tabs": tabs(request), "offer": offer, "step": step,
            "steps": _steps_nav(offer, step), "card": _card(offer, pending),
            "step_number": STEP_NAMES.index(step) + 1,
            "back": (reverse("coach_offer_edit", args=[offer.pk, STEP_NAMES[
                STEP_NAMES.index(step) - 1]]) if offer is not None and step != "thumbnail"
                else reverse("coach_offer_new", args=["thumbnail"]) if step == "checkout"
                else "")}
    return render(request, f"web/coach/offer_step_{step}.html", base | ctx, status=status)


@require_safe
@coach_required
def offer_start(request: HttpRequest) -> HttpResponse:
    return redirect("coach_offer_new", step="thumbnail")


@require_http_methods(["GET", "POST"])
@coach_required
def offer_new(request: HttpRequest, step: str) -> HttpResponse:
    if step not in ("thumbnail", "checkout"):
        if step in STEP_NAMES:
            messages.info(request, "Fill in the checkout step first: it saves the draft.")
            return redirect("coach_offer_new", step="checkout")
        raise Http404("No such step.")
    if step == "thumbnail":
        return _thumbnail_step(request, None)
    return _checkout_step(request, None)


@require_safe
@coach_required
def offer_resume(request: HttpRequest, offer_id: int) -> HttpResponse:
    offer = _own_offer(request, offer_id)
    step = request.session.get(f"offer_wizard_{offer.pk}")
    if step not in STEP_NAMES:
        step = "availability" if offer.status == OfferStatus.DRAFT else "checkout"
    return redirect("coach_offer_edit", offer_id=offer.pk, step=step)


@require_http_methods(["GET", "POST"])
@coach_required
def offer_edit(request: HttpRequest, offer_id: int, step: str) -> HttpResponse:
    if step not in STEP_NAMES:
        raise Http404("No such step.")
    offer = _own_offer(request, offer_id)
    if offer.status == OfferStatus.ARCHIVED:
        messages.error(request, "An archived offer cannot be changed.")
        return redirect("coach_offers")
    handler = {"thumbnail": _thumbnail_step, "checkout": _checkout_step,
               "availability": _rules_step, "options": _options_step}[step]
    return handler(request, offer)


def _thumbnail_step(request: HttpRequest, offer: Offer | None) -> HttpResponse:
    pending: dict[str, str] = dict(request.session.get(NEW_KEY) or {})
    current_style = offer.card_style if offer is not None else pending.get("card_style", "ocean")
    current_picture = offer.thumbnail if offer is not None else pending.get("thumbnail", "")
    form = ThumbnailForm(request.POST or None, request.FILES or None,
                         initial={"card_style": current_style})
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("picture")
        name = current_picture
        stored = ""
        try:
            if upload is not None:
                if upload.size > thumbnails.MAX_BYTES:  # refused before reading it whole
                    raise InvalidInput("The picture is larger than 5 MB.",
                                       details={"field": "picture"})
                stored = name = thumbnails.store(upload.read())
            elif form.cleaned_data.get("remove_picture"):
                name = ""
            changes = {"card_style": form.cleaned_data["card_style"], "thumbnail": name}
            if offer is not None:
                catalog.update_offer(_me(request), offer.pk, changes)
            else:
                catalog_rules.validate_offer_fields(changes)
                old = pending.get("thumbnail", "")
                if old and old != name:
                    thumbnails.delete(old)  # a new offer's earlier upload, never saved
                request.session[NEW_KEY] = changes
        except CoachgateError as exc:
            if stored:
                thumbnails.delete(stored)
            _apply_service_error(form, exc, {"thumbnail": "picture"})
        else:
            if offer is None:
                return redirect("coach_offer_new", step="checkout")
            _remember(request, offer, "thumbnail")
            messages.success(request, "Picture saved.")
            return redirect(_next_url(offer, "thumbnail"))
    return _render_step(request, offer, "thumbnail", {
        "form": form, "styles": form["card_style"], "has_picture": bool(current_picture),
        "picture_url": _picture_url(current_picture)})


def _intake_initial(offer: Offer | None) -> list[dict[str, Any]]:
    if offer is None:
        return []
    rows = []
    for f in offer.intake_fields if isinstance(offer.intake_fields, list) else []:
        if isinstance(f, dict):
            rows.append({"key": f.get("key", ""), "label": f.get("label", ""),
                         "type": f.get("type", "text"), "required": bool(f.get("required")),
                         "choices": ", ".join(str(c) for c in f.get("choices") or [])})
    return rows


def _intake_fields(formset: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """The rows as intake field definitions, and which form each came from; rows without a
    question and rows marked for removal are left out."""
    fields, origin = [], []
    for i, row in enumerate(formset.forms):
        data = row.cleaned_data
        if not data or data.get("DELETE") or not data.get("label", "").strip():
            continue
        item: dict[str, Any] = {"label": data["label"], "type": data["type"],
                                "required": bool(data.get("required"))}
        if data.get("key"):
            item["key"] = data["key"]
        if data["type"] == "choice":
            item["choices"] = [c.strip() for c in data.get("choices", "").split(",")
                               if c.strip()]
        fields.append(item)
        origin.append(i)
    return fields, origin


def _checkout_step(request: HttpRequest, offer: Offer | None) -> HttpResponse:
    initial: dict[str, Any] = {"currency": "USD", "duration_minutes": 60, "capacity": 1,
                               "pack_size": 1, "session_type": "video", "delivery": "jitsi"}
    if offer is not None:
        initial = {"title": offer.title, "description": offer.description,
                   "currency": offer.currency, "duration_minutes": offer.duration_minutes,
                   "session_type": offer.session_type, "delivery": offer.delivery,
                   "capacity": offer.capacity, "pack_size": offer.pack_size,
                   "price": (amount_text(offer.price_minor, offer.currency)
                             if money.is_currency(offer.currency) else str(offer.price_minor))}
    post: Any = request.POST if request.method == "POST" else None
    adding = post is not None and "add_intake" in post
    if adding:  # no JavaScript: "Add a question" posts the form back with one more row
        more = post.copy()
        try:
            total = int(more.get("intake-TOTAL_FORMS", "0"))
        except ValueError:
            total = 0
        more["intake-TOTAL_FORMS"] = str(min(total + 1, catalog_rules.MAX_INTAKE_FIELDS))
        post = more
    form = CheckoutForm(post, initial=initial,
                        current_currency=offer.currency if offer is not None else "")
    formset = IntakeFormSet(post, initial=None if post else _intake_initial(offer),
                            prefix="intake")
    if post is not None and not adding:
        form_ok, rows_ok = form.is_valid(), formset.is_valid()
        if form_ok and rows_ok:
            fields, origin = _intake_fields(formset)
            data: dict[str, Any] = {k: form.cleaned_data[k] for k in (
                "title", "description", "currency", "duration_minutes", "session_type",
                "delivery", "capacity", "pack_size", "price_minor")}
            data["intake_fields"] = fields
            try:
                if offer is None:
                    pending = dict(request.session.get(NEW_KEY) or {})
                    data.update({k: v for k, v in pending.items()
                                 if k in ("card_style", "thumbnail")})
                    offer = catalog.create_offer(_me(request), data)
                    request.session.pop(NEW_KEY, None)
                    messages.success(request, "Draft saved. It stays a draft until you "
                                              "publish it.")
                else:
                    offer = catalog.update_offer(_me(request), offer.pk, data)
                    messages.success(request, "Checkout saved.")
            except CoachgateError as exc:
                where = str(exc.details.get("field", ""))
                m = re.match(r"intake_fields\[(\d+)\]", where)
                if m and int(m.group(1)) < len(origin):
                    formset.forms[origin[int(m.group(1))]].add_error(None, exc.message)
                    form.add_error(None, "One of the intake questions needs a change: see "
                                         "below.")
                else:
                    _apply_service_error(form, exc, {"price_minor": "price"})
            else:
                _remember(request, offer, "checkout")
                return redirect(_next_url(offer, "checkout"))
    return _render_step(request, offer, "checkout", {
        "form": form, "formset": formset,
        "max_rows": catalog_rules.MAX_INTAKE_FIELDS,
        "discord_configured": form.discord_configured})


def _rules_step(request: HttpRequest, offer: Offer) -> HttpResponse:
    names = list(RulesForm.base_fields)
    form = RulesForm(request.POST or None,
                     initial={n: getattr(offer, n) for n in names})
    if request.method == "POST" and form.is_valid():
        try:
            catalog.update_offer(_me(request), offer.pk,
                                 {n: form.cleaned_data[n] for n in names})
        except CoachgateError as exc:
            _apply_service_error(form, exc)
        else:
            _remember(request, offer, "availability")
            messages.success(request, "Booking rules saved.")
            return redirect(_next_url(offer, "availability"))
    return _render_step(request, offer, "availability", {
        "form": form, "hours": _weekly_hours(request), "zone": request.profile.timezone,  # type: ignore[attr-defined]  # set by coach_required
        "slots": _slot_count(request, offer), "slot_days": SLOT_DAYS})


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _weekly_hours(request: HttpRequest) -> list[tuple[str, str]]:
    """The coach's weekly hours, a day per line, in the coach's zone (as they are set)."""
    days: dict[int, list[str]] = {}
    rules = scheduling.weekly_availability(request.profile)  # type: ignore[attr-defined]  # set by coach_required
    for r in sorted(rules, key=lambda r: (r.weekday, r.start_time)):
        days.setdefault(r.weekday, []).append(
            f"{r.start_time:%H:%M}–{r.end_time:%H:%M}")
    return [(WEEKDAYS[d], ", ".join(spans)) for d, spans in sorted(days.items())
            if 0 <= d < len(WEEKDAYS)]


def _slot_count(request: HttpRequest, offer: Offer) -> str | None:
    """How many slots a published offer has in the next SLOT_DAYS days (None: a draft,
    which offers none until it is published)."""
    if offer.status != OfferStatus.PUBLISHED:
        return None
    now = clock.now()
    try:
        page = scheduling.slot_page(_me(request), offer, start=now,
                                    end=now + timedelta(days=SLOT_DAYS), now=now,
                                    limit=scheduling.MAX_SLOT_LIMIT)
    except CoachgateError:
        return "?"
    return f"{len(page.slots)}{'+' if page.next_start else ''}"


def _options_initial(offer: Offer) -> dict[str, Any]:
    try:
        access = catalog_rules.parse_access_policy(offer.access_policy)
    except CoachgateError:
        access = catalog_rules.AccessPolicy()
    try:
        money_policy = catalog_rules.parse_money_policy(offer.money_policy)
    except CoachgateError:
        money_policy = catalog_rules.MoneyPolicy()
    initial: dict[str, Any] = {k: round(getattr(access, k) / 60) for k in _ACCESS_MINUTES}
    initial.update({
        "reminders": ", ".join(str(round(s / 60)) for s in access.reminders_before_s),
        "end_action": access.end_action, "discord_mode": access.discord_mode,
        "no_show_wait_ratio": money_policy.no_show_wait_ratio,
        "min_payable_ratio": money_policy.min_payable_ratio})
    return initial


def _options_policies(offer: Offer, form: OptionsForm
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The policies the form's answers make. A duration shown in minutes and left as shown
    keeps its stored seconds (the demo's lifecycle policies count seconds)."""
    try:
        stored = catalog_rules.parse_access_policy(offer.access_policy).as_dict()
    except CoachgateError:
        stored = catalog_rules.AccessPolicy().as_dict()
    data = form.cleaned_data
    access = dict(stored)
    for key in _ACCESS_MINUTES:
        minutes = data[key]
        if minutes != round(stored[key] / 60):
            access[key] = minutes * 60
    wanted = data["reminders"]
    old = stored["reminders_before_s"]
    if sorted(wanted, reverse=True) != sorted((round(s / 60) for s in old), reverse=True):
        access["reminders_before_s"] = [m * 60 for m in wanted]
    access["end_action"] = data["end_action"]
    access["discord_mode"] = data["discord_mode"]
    money_policy = {"no_show_wait_ratio": data["no_show_wait_ratio"].strip(),
                    "min_payable_ratio": data["min_payable_ratio"].strip()}
    return access, money_policy


def _options_step(request: HttpRequest, offer: Offer) -> HttpResponse:
    form = OptionsForm(request.POST or None, initial=_options_initial(offer))
    if request.method == "POST" and form.is_valid():
        access, money_policy = _options_policies(offer, form)
        try:
            offer = catalog.update_offer(_me(request), offer.pk,
                                         {"access_policy": access, "money_policy": money_policy})
        except CoachgateError as exc:
            _apply_service_error(form, exc)
        else:
            request.session[f"offer_wizard_{offer.pk}"] = "options"
            if "publish" in request.POST and offer.status == OfferStatus.DRAFT:
                return redirect("coach_offer_status", offer_id=offer.pk, action="publish")
            messages.success(request, "Saved." if offer.status == OfferStatus.PUBLISHED
                             else "Saved as a draft. Publish it when it is ready.")
            return redirect("coach_offers")
    return _render_step(request, offer, "options", {
        "form": form, "policy": _preview_text(offer, form if form.is_bound else None),
        "discord": offer.delivery == Delivery.DISCORD_VOICE})


def _preview_text(offer: Offer, form: OptionsForm | None) -> PolicyText | str | None:
    """The policy sentence for the saved offer, or for the answers being typed."""
    if form is None:
        return offer_policy_text(offer)
    if not form.is_valid():
        return "Fix the fields marked in red to see what the policies mean."
    access, money_policy = _options_policies(offer, form)
    try:
        return policy_text(
            duration=offer.duration_minutes, price_minor=offer.price_minor,
            currency=offer.currency, pack_size=offer.pack_size,
            discord_delivery=offer.delivery == Delivery.DISCORD_VOICE,
            access=catalog_rules.parse_access_policy(access),
            money_policy=catalog_rules.parse_money_policy(money_policy))
    except CoachgateError as exc:
        return exc.message
    except ValueError:
        return "These policies cannot be read."


@require_POST
@coach_required
def offer_policy_preview(request: HttpRequest, offer_id: int) -> HttpResponse:
    """htmx: the options step's sentence for the answers being typed (nothing is saved)."""
    offer = _own_offer(request, offer_id)
    form = OptionsForm(request.POST)
    return render(request, "web/coach/offer_policy.html",
                  {"policy": _preview_text(offer, form)})


# --- publish and archive -----------------------------------------------------------------

ACTIONS = {"publish": OfferStatus.PUBLISHED, "archive": OfferStatus.ARCHIVED}


@require_http_methods(["GET", "POST"])
@coach_required
def offer_status(request: HttpRequest, offer_id: int, action: str) -> HttpResponse:
    """The confirmation page of publish and archive (GET), and the change itself (POST)."""
    if action not in ACTIONS:
        raise Http404("No such action.")
    offer = _own_offer(request, offer_id)
    target = ACTIONS[action]
    problem = None
    try:
        catalog_rules.check_offer_transition(offer.status, target)
    except CoachgateError as exc:
        problem = exc.message
    if (problem is None and target == OfferStatus.PUBLISHED
            and offer.delivery == Delivery.DISCORD_VOICE and discord.guild_settings() is None):
        problem = DISCORD_MISSING
    if request.method == "POST":
        if problem is None:
            try:
                catalog.set_offer_status(_me(request), offer.pk, target)
            except CoachgateError as exc:
                problem = exc.message
        if problem is not None:
            messages.error(request, problem)
            return redirect("coach_offers")
        if target == OfferStatus.PUBLISHED:
            messages.success(request, f"“{offer.title}” is published: students can book it.")
        else:
            messages.success(request, f"“{offer.title}” is archived: nobody can book it any "
                                      "more; sessions already booked still take place.")
        return redirect(f"{reverse('coach_offers')}?status={target}")
    return render(request, "web/coach/offer_confirm.html", {
        "tabs": tabs(request), "offer": offer, "action": action, "problem": problem,
        "card": _card(offer), "policy": offer_policy_text(offer)})


# --- the picture -------------------------------------------------------------------------

@require_safe
def offer_picture(request: HttpRequest, name: str) -> FileResponse:
    """An offer's stored picture, for whoever may see the offer (and a new offer's picture
    for the coach making it)."""
    path = thumbnails.path_of(name)
    if path is None or not path.is_file():
        raise Http404("No such picture.")
    viewer = request.user if request.user.is_authenticated else None
    pending = (request.session.get(NEW_KEY) or {}).get("thumbnail")
    if pending != name and not catalog.visible_offers(viewer).filter(thumbnail=name).exists():
        raise Http404("No such picture.")
    response = FileResponse(path.open("rb"), content_type="image/jpeg")
    # A new picture gets a new name: the bytes behind a name never change.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


urlpatterns: list[URLPattern] = [
    path("offers/", offers_list, name="coach_offers"),
    path("offers/new/", offer_start, name="coach_offer_start"),
    path("offers/new/<slug:step>/", offer_new, name="coach_offer_new"),
    path("offers/<int:offer_id>/edit/", offer_resume, name="coach_offer_resume"),
    path("offers/<int:offer_id>/edit/<slug:step>/", offer_edit, name="coach_offer_edit"),
    path("offers/<int:offer_id>/policy-preview/", offer_policy_preview,
         name="coach_offer_policy_preview"),
    path("offers/<int:offer_id>/<slug:action>/", offer_status, name="coach_offer_status"),
]

# Mounted at the site root (web/urls.py): students see the pictures too.
public_urlpatterns: list[URLPattern] = [
    path("offers/pictures/<str:name>", offer_picture, name="offer_picture"),
]
