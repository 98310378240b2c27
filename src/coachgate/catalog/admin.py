from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from coachgate.accounts.models import CoachApplication
from coachgate.accounts.services import reject_application
from coachgate.kit.adminforms import IntakeFieldsField, PolicyField, TagListField
from coachgate.kit.errors import CoachgateError

from . import rules
from .models import CoachProfile, Offer
from .services import approve_application


class CoachApplicationForm(forms.ModelForm[CoachApplication]):
    specialties = TagListField()

    class Meta:
        model = CoachApplication
        fields = "__all__"


class CoachProfileForm(forms.ModelForm[CoachProfile]):
    specialties = TagListField()

    class Meta:
        model = CoachProfile
        fields = "__all__"


_ACCESS_KEYS = [
    ("grant_before_s", "Access opens (seconds before the start)"),
    ("provision_before_s", "Channel made (seconds before the start; empty: with the access)"),
    ("join_window_before_s", "Join button appears (seconds before the start)"),
    ("reminders_before_s", "Reminders (seconds before the start, separated by commas)"),
    ("revoke_after_s", "Access closes (seconds after the end)"),
    ("end_action", "After access closes, the channel is (delete or archive)"),
    ("discord_mode", "Discord access by (member_overwrites, session_role or offer_role)"),
]
_MONEY_KEYS = [
    ("no_show_wait_ratio", "No-show wait (share of the duration, e.g. 1/3)"),
    ("min_payable_ratio", "Minimum payable (share of the duration, e.g. 2/3)"),
]


class OfferForm(forms.ModelForm[Offer]):
    """The offer's questions and policies edited through inputs (never raw JSON), checked
    by the same rules as the API."""

    intake_fields = IntakeFieldsField(
        types=rules.INTAKE_TYPES, parse=rules.normalize_intake_fields,
        help_text="Leave a question empty to remove it; each keeps its stable key.")
    access_policy = PolicyField(
        keys=_ACCESS_KEYS, parse=rules.parse_access_policy,
        help_text="When access opens and closes; an empty input keeps the default.")
    money_policy = PolicyField(
        keys=_MONEY_KEYS, parse=rules.parse_money_policy,
        help_text="The no-show wait and the early-end threshold; an empty input keeps the "
                  "default.")

    class Meta:
        model = Offer
        fields = "__all__"


@admin.register(CoachApplication)
class CoachApplicationAdmin(admin.ModelAdmin[CoachApplication]):
    form = CoachApplicationForm
    list_display = ("display_name", "user", "status", "submitted_at", "reviewed_at")
    list_filter = ("status",)
    search_fields = ("display_name", "user__email")
    readonly_fields = ("status", "reviewed_at", "reviewed_by", "submitted_at")
    actions = ("approve", "reject")

    @admin.action(description="Approve selected applications")
    def approve(self, request: HttpRequest, queryset: QuerySet[CoachApplication]) -> None:
        self._review(request, queryset, approve_application, "approved")

    @admin.action(description="Reject selected applications")
    def reject(self, request: HttpRequest, queryset: QuerySet[CoachApplication]) -> None:
        self._review(request, queryset, reject_application, "rejected")

    def _review(
        self, request: HttpRequest, queryset: QuerySet[CoachApplication], action: Any, verb: str
    ) -> None:
        done = 0
        for app in queryset:
            try:
                action(request.user, app.pk)
                done += 1
            except CoachgateError as exc:
                self.message_user(request, f"{app}: {exc.message}", messages.WARNING)
        if done:
            self.message_user(request, f"{done} application(s) {verb}.", messages.SUCCESS)


@admin.register(CoachProfile)
class CoachProfileAdmin(admin.ModelAdmin[CoachProfile]):
    form = CoachProfileForm
    list_display = ("display_name", "user", "timezone", "status", "seat_capacity",
                    "rating_average")
    list_filter = ("status",)
    search_fields = ("display_name", "user__email")


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin[Offer]):
    form = OfferForm
    list_display = ("title", "coach", "status", "price_minor", "currency", "duration_minutes",
                    "delivery", "capacity", "pack_size")
    list_filter = ("status", "delivery", "session_type")
    search_fields = ("title", "coach__display_name")
