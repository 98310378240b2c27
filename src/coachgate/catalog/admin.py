from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from coachgate.accounts.models import CoachApplication
from coachgate.accounts.services import reject_application
from coachgate.kit.errors import CoachgateError

from .models import CoachProfile, Offer
from .services import approve_application


@admin.register(CoachApplication)
class CoachApplicationAdmin(admin.ModelAdmin[CoachApplication]):
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
    list_display = ("display_name", "user", "timezone", "status", "seat_capacity",
                    "rating_average")
    list_filter = ("status",)
    search_fields = ("display_name", "user__email")


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin[Offer]):
    list_display = ("title", "coach", "status", "price_minor", "currency", "duration_minutes",
                    "delivery", "capacity", "pack_size")
    list_filter = ("status", "delivery", "session_type")
    search_fields = ("title", "coach__display_name")
