"""Admin views of video connections and meetings: read-only, and never a secret (tokens,
the Jitsi secret, a meeting's join link and password are not even shown encrypted)."""

from django.contrib import admin
from django.http import HttpRequest

from .models import Meeting, Participation, ProviderEvent, VideoConnection


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(VideoConnection)
class VideoConnectionAdmin(_ReadOnly, admin.ModelAdmin[VideoConnection]):
    list_display = ("coach", "provider", "state", "account_email", "plan", "checked_at",
                    "last_error")
    list_filter = ("provider", "state")
    search_fields = ("coach__display_name", "account_email")
    fields = ("coach", "provider", "state", "account_id", "account_email", "plan", "scopes",
              "missing_scopes", "base_url", "app_id", "token_expires_at", "connected_at",
              "checked_at", "invalid_since", "last_error")


@admin.register(Meeting)
class MeetingAdmin(_ReadOnly, admin.ModelAdmin[Meeting]):
    list_display = ("session", "provider", "state", "external_id", "next_due_at", "attempts",
                    "last_error")
    list_filter = ("provider", "state")
    fields = ("session", "connection", "provider", "state", "external_id", "synced_start",
              "synced_minutes", "next_due_at", "attempts", "last_error", "created_at",
              "updated_at")


@admin.register(ProviderEvent)
class ProviderEventAdmin(_ReadOnly, admin.ModelAdmin[ProviderEvent]):
    list_display = ("provider", "event", "received_at", "status", "processed_at")
    list_filter = ("provider", "event", "status")


@admin.register(Participation)
class ParticipationAdmin(_ReadOnly, admin.ModelAdmin[Participation]):
    list_display = ("meeting", "instance", "participant", "role", "joined_at", "left_at")
