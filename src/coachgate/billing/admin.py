"""Read-only admin pages for money: settlements, payments, the ledger, webhooks, gates.

Money is never edited here (a payout is recorded through its service and API); admins
see what happened and why, and can ask a stuck payment or gate to run now.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from coachgate.kit import clock

from .models import (
    JournalEntry,
    LedgerLine,
    Payment,
    SessionBilling,
    Settlement,
    WebhookEvent,
)


class ReadOnly(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Settlement)
class SettlementAdmin(ReadOnly):
    list_display = ("booking", "session", "student", "coach", "outcome", "currency",
                    "price_minor", "charge_minor", "fee_minor", "payout_minor", "funded_by",
                    "settled_at")
    list_filter = ("outcome", "currency")
    search_fields = ("session__id", "booking__id", "student__email", "funded_by")


@admin.register(Payment)
class PaymentAdmin(ReadOnly):
    list_display = ("key", "student", "gateway", "status", "currency", "amount_minor",
                    "capture_minor", "captured_minor", "refunded_minor", "decline_code",
                    "next_due_at", "attempts")
    list_filter = ("status", "gateway", "decline_code")
    search_fields = ("key", "ref", "student__email")
    actions = ["run_now"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True  # for the action only: every field is read-only

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Payment._meta.fields]

    @admin.action(description="Run the payment gate now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        n = queryset.exclude(next_due_at__isnull=True).update(next_due_at=clock.now())
        from .services import run_due

        report = run_due(now=clock.now())
        messages.info(request, f"{n} payment(s) due now; ran {report.payments} step(s), "
                               f"{report.errors} error(s).")


class LedgerLineInline(admin.TabularInline[LedgerLine, Any]):
    model = LedgerLine
    fields = ("account", "amount_minor", "currency")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnly):
    list_display = ("key", "kind", "currency", "session", "memo", "at")
    list_filter = ("kind", "currency")
    search_fields = ("key", "memo")
    inlines = [LedgerLineInline]


@admin.register(SessionBilling)
class SessionBillingAdmin(ReadOnly):
    list_display = ("session", "settle_at", "settled_at", "next_due_at", "attempts",
                    "last_error")
    search_fields = ("session__id", "last_error")


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnly):
    list_display = ("gateway", "event_id", "type", "status", "received_at", "processed_at")
    list_filter = ("gateway", "status", "type")
    search_fields = ("event_id",)
