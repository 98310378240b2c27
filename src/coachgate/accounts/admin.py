from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from coachgate.kit.errors import CoachgateError

from .discord import save_guild_config, unlink_discord, validate_guild_config
from .models import ApiToken, DiscordGuildConfig, DiscordLink, User


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    ordering = ("email",)
    list_display = ("email", "display_name", "role", "is_active", "date_joined")
    list_filter = ("role", "is_active")
    search_fields = ("email", "display_name")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "timezone", "role")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),
    )


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("user", "prefix", "digest", "created_at", "last_used_at")
    search_fields = ("user__email", "name", "prefix")


class DiscordGuildConfigForm(forms.ModelForm[DiscordGuildConfig]):
    # Write-only: the stored token is never rendered back (not even encrypted). An empty
    # field keeps the current token; "clear" removes it.
    new_bot_token = forms.CharField(
        label="Bot token", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Leave empty to keep the current token.",
    )
    clear_bot_token = forms.BooleanField(label="Remove the stored bot token", required=False)
    api_url = forms.URLField(required=False, assume_scheme="https",
                             help_text="Blank: COACHGATE_DISCORD_API_URL.")

    class Meta:
        model = DiscordGuildConfig
        fields = ("guild_id", "category_id", "archive_category_id", "api_url")

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        try:
            validate_guild_config(
                guild_id=data.get("guild_id"), bot_token=data.get("new_bot_token"),
                category_id=data.get("category_id"),
                archive_category_id=data.get("archive_category_id"),
                api_url=data.get("api_url"))
        except CoachgateError as exc:
            field = exc.details.get("field")
            self.add_error("new_bot_token" if field == "bot_token" else field, exc.message)
        return data


@admin.register(DiscordGuildConfig)
class DiscordGuildConfigAdmin(admin.ModelAdmin[DiscordGuildConfig]):
    form = DiscordGuildConfigForm
    list_display = ("__str__", "guild_id", "bot_token_set", "api_url", "updated_at")
    readonly_fields = ("bot_token_set", "updated_at")
    fields = ("guild_id", "new_bot_token", "clear_bot_token", "bot_token_set", "category_id",
              "archive_category_id", "api_url", "updated_at")

    @admin.display(boolean=True, description="Bot token stored")
    def bot_token_set(self, obj: DiscordGuildConfig) -> bool:
        return bool(obj.bot_token)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not DiscordGuildConfig.objects.exists()

    def save_model(self, request: HttpRequest, obj: DiscordGuildConfig, form: Any,
                   change: bool) -> None:
        # The service owns the change (and encrypts the token); the admin is one caller.
        token = form.cleaned_data.get("new_bot_token") or None
        if form.cleaned_data.get("clear_bot_token"):
            token = ""
        saved = save_guild_config(
            guild_id=obj.guild_id, bot_token=token, category_id=obj.category_id,
            archive_category_id=obj.archive_category_id, api_url=obj.api_url,
        )
        obj.pk, obj.bot_token, obj.updated_at = saved.pk, saved.bot_token, saved.updated_at


@admin.register(DiscordLink)
class DiscordLinkAdmin(admin.ModelAdmin[DiscordLink]):
    list_display = ("user", "username", "discord_user_id", "guild_member", "linked_at",
                    "checked_at")
    list_filter = ("guild_member",)
    search_fields = ("user__email", "username", "discord_user_id")
    # No token fields, not even their ciphertext.
    fields = ("user", "username", "discord_user_id", "scopes", "token_expires_at",
              "guild_member", "linked_at", "checked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # unlinking goes through the service (it also removes allauth's row)

    actions = ("unlink",)

    @admin.action(description="Unlink the selected Discord accounts")
    def unlink(self, request: HttpRequest, queryset: QuerySet[DiscordLink]) -> None:
        users = [link.user for link in queryset.select_related("user")]
        for user in users:
            unlink_discord(user)
        self.message_user(request, f"Unlinked {len(users)} Discord account(s).")
