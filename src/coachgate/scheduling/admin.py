from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import AvailabilityOverride, Booking, Session, SessionEvent, WeeklyAvailability


class BookingInline(admin.TabularInline[Booking, Any]):
    model = Booking
    extra = 0
    fields = ("student", "status", "booked_at", "cancelled_at", "cancellation_outcome")
    readonly_fields = fields
    can_delete = False


class EventInline(admin.TabularInline[SessionEvent, Any]):
    model = SessionEvent
    extra = 0
    fields = ("at", "kind", "actor", "before", "after")
    readonly_fields = fields
    can_delete = False


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin[Session]):
    """Read-mostly: state changes go through the service functions, which audit them."""

    list_display = ("id", "offer", "coach", "starts_at", "ends_at", "status", "seats_taken")
    list_filter = ("status",)
    search_fields = ("offer__title", "coach__display_name", "bookings__student__email")
    date_hierarchy = "starts_at"
    readonly_fields = ("coach", "offer", "starts_at", "ends_at", "status", "capacity",
                       "seats_taken", "reschedule_count", "created_at", "updated_at")
    inlines = (BookingInline, EventInline)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WeeklyAvailability)
class WeeklyAvailabilityAdmin(admin.ModelAdmin[WeeklyAvailability]):
    list_display = ("coach", "weekday", "start_time", "end_time")
    list_filter = ("weekday",)


@admin.register(AvailabilityOverride)
class AvailabilityOverrideAdmin(admin.ModelAdmin[AvailabilityOverride]):
    list_display = ("coach", "day", "kind", "start_time", "end_time")
