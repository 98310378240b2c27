from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from coachgate.kit import clock

from . import services
from .models import Category, DiscordCall, GuildState, OfferRole, SessionAccess


class DiscordCallInline(admin.TabularInline[DiscordCall, Any]):
    model = DiscordCall
    fields = ("at", "method", "route", "status", "duration_ms")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-at",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(SessionAccess)
class SessionAccessAdmin(admin.ModelAdmin[SessionAccess]):
    """Each session's gates, access state, last error and Discord calls."""

    list_display = ("session", "mode", "phase", "next_due_at", "error_kind", "attempts",
                    "error", "discord_calls", "channel_id", "last_run_at")
    list_filter = ("phase", "error_kind", "mode", "discord")
    search_fields = ("session__id", "channel_id", "last_error")
    readonly_fields = ("gates", *[f.name for f in SessionAccess._meta.fields])
    actions = ["converge_now"]
    inlines = [DiscordCallInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="last error")
    def error(self, obj: SessionAccess) -> str:
        return obj.last_error if len(obj.last_error) <= 120 else obj.last_error[:119] + "…"

    @admin.display(description="gates")
    def gates(self, obj: SessionAccess) -> str:
        try:
            gates = services.readable_gates(obj.session)
        except services.AccessUnavailable as exc:
            return format_html("<strong>unavailable</strong>: {}", exc.details.get("reason"))
        return format_html_join(
            "", "<div>{} — {}</div>",
            ((g.at.isoformat(), g.kind.value + (f" ({g.before_s}s before)" if g.before_s
                                                 else ""))
             for g in gates))

    @admin.action(description="Run the gates of the selected sessions now")
    def converge_now(self, request: HttpRequest, queryset: QuerySet[SessionAccess]) -> None:
        results = [services.converge(row.pk, now=clock.now()) for row in queryset[:100]]
        summary = ", ".join(f"{r.session_id}: {r.outcome}" for r in results)
        self.message_user(request, f"Converged: {summary}", messages.INFO)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = ("category_id", "name", "guild_id", "configured", "full", "created_at")


@admin.register(OfferRole)
class OfferRoleAdmin(admin.ModelAdmin[OfferRole]):
    list_display = ("offer", "guild_id", "role_id", "channel_id")


@admin.register(GuildState)
class GuildStateAdmin(admin.ModelAdmin[GuildState]):
    list_display = ("guild_id", "other_channels", "checked_at")
