"""Admin for packs, seats and the waitlist: read-mostly. State changes go through the
services (the gates, settlement); the only action runs the gates of selected rows now."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from coachgate.kit import clock

from . import services
from .models import Pack, PackUse, Seat, WaitlistEntry


class _ReadOnly(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class PackUseInline(admin.TabularInline[PackUse, Any]):
    model = PackUse
    fields = ("number", "booking", "value_minor", "booked_at", "consumed_at", "freed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("number", "pk")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Pack)
class PackAdmin(_ReadOnly):
    list_display = ("id", "student", "offer", "status", "remaining", "size", "price_minor",
                    "currency", "purchased_at", "expires_at", "next_due_at", "attempts")
    list_filter = ("status",)
    search_fields = ("id", "student__email", "offer__title", "last_error")
    readonly_fields = [f.name for f in Pack._meta.fields]
    inlines = [PackUseInline]
    actions = ["run_gates_now"]

    @admin.action(description="Run the due gates now (expiry, seat warnings and releases)")
    def run_gates_now(self, request: HttpRequest, queryset: QuerySet[Pack]) -> None:
        report = services.sweep(now=clock.now())
        self.message_user(request, f"Gates run: {report.as_dict()}", messages.INFO)


@admin.register(Seat)
class SeatAdmin(_ReadOnly):
    list_display = ("id", "coach", "student", "status", "pack", "grace_ends_at",
                    "final_warning_sent", "released_at", "next_due_at", "attempts")
    list_filter = ("status", "final_warning_sent")
    search_fields = ("id", "student__email", "coach__display_name", "last_error")
    readonly_fields = [f.name for f in Seat._meta.fields]


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(_ReadOnly):
    list_display = ("id", "coach", "student", "created_at", "notified_at", "fulfilled_at")
    search_fields = ("student__email", "coach__display_name")
    readonly_fields = [f.name for f in WaitlistEntry._meta.fields]
