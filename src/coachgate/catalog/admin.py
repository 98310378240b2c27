from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from coachgate.accounts.models import CoachApplication
from coachgate.accounts.services import reject_application
from coachgate.kit.adminforms import PrettyJSONField, TagListField
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


class OfferForm(forms.ModelForm[Offer]):
    """The offer's JSON fields as indented text, checked by the same rules as the API."""

    intake_fields = PrettyJSONField(
        parse=rules.normalize_intake_fields,
        empty=list,
        help_text='A list of questions, e.g. [{"label": "Your goal", "type": "text", '
                  '"required": true}]. Types: ' + ", ".join(rules.INTAKE_TYPES) + ".")
    access_policy = PrettyJSONField(
        parse=rules.parse_access_policy, empty=dict,
        help_text="When access opens and closes, in seconds; {} keeps the defaults.")
    money_policy = PrettyJSONField(
        parse=rules.parse_money_policy, empty=dict,
        help_text="No-show wait, early-end threshold and no-show charge; {} keeps the "
                  "defaults.")

    class Meta:
        model = Offer
        fields = "__all__"

    def clean_intake_fields(self) -> list[dict[str, Any]]:
        try:  # each question gets its stable key, as the API's edits do
            return rules.normalize_intake_fields(self.cleaned_data["intake_fields"])
        except CoachgateError as exc:
            raise forms.ValidationError(exc.message) from None


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
