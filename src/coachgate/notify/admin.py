from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from coachgate.kit import clock

from .models import Notification, Status
from .services import retry_failed


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin[Notification]):
    list_display = ("key", "channel", "user", "template", "status", "attempts",
                    "next_attempt_at", "sent_at", "created_at")
    list_filter = ("status", "channel", "template")
    search_fields = ("key", "user__email")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    readonly_fields = ("key", "channel", "user", "template", "context", "status", "attempts",
                       "next_attempt_at", "claimed_at", "created_at", "sent_at", "last_error")
    actions = ("retry",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # notifications come from the domain, through notify()

    @admin.action(description="Retry the selected failed notifications")
    def retry(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        ids = list(queryset.filter(status=Status.FAILED).values_list("pk", flat=True))
        count = retry_failed(ids, now=clock.now())
        skipped = queryset.count() - count
        note = f" ({skipped} not failed, left alone)" if skipped else ""
        self.message_user(request, f"{count} notification(s) queued again{note}.")
