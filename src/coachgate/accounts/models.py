from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models


class Role(models.TextChoices):
    STUDENT = "student", "Student"
    COACH = "coach", "Coach"
    ADMIN = "admin", "Admin"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(
        self, email: str, password: str | None = None, **extra: Any
    ) -> User:
        if not email:
            raise ValueError("email is required")
        email = self.normalize_email(email).lower()
        role = extra.setdefault("role", Role.STUDENT)
        if role == Role.ADMIN:
            extra.setdefault("is_staff", True)
            extra.setdefault("is_superuser", True)
        user = self.model(email=email, **extra)
        user.set_password(password)  # None -> unusable password
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra["role"] = Role.ADMIN
        return self.create_user(email, password, **extra)


class User(AbstractUser):
    username = None  # type: ignore[assignment]  # email is the login
    email = models.EmailField("email address", unique=True)
    display_name = models.CharField(max_length=120, blank=True)
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA zone used to show times to this user."
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STUDENT)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]  # django-stubs types objects as the base Manager

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]), name="user_role_valid"
            )
        ]

    def __str__(self) -> str:
        return self.display_name or self.email

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_coach(self) -> bool:
        return self.role == Role.COACH


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 digest is stored; the raw value is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApplicationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class CoachApplication(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="coach_applications")
    display_name = models.CharField(max_length=120)
    bio = models.TextField(blank=True)
    specialties = models.JSONField(default=list, blank=True)
    timezone = models.CharField(max_length=64)
    motivation = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=ApplicationStatus.choices, default=ApplicationStatus.PENDING
    )
    submitted_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decision_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            # One open application per user at a time.
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(status="pending"),
                name="one_pending_application_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.status})"


class DiscordLink(models.Model):
    """A student's (or coach's) linked Discord account.

    The OAuth tokens are stored encrypted (``coachgate.kit.crypto``): the columns hold
    ciphertext only, and ``coachgate.accounts.discord`` decrypts them when it needs them.
    ``guild_member`` is the last known membership of the platform guild, so the
    verification card and the booking check need no network call.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="discord_link")
    discord_user_id = models.CharField(max_length=32, unique=True)
    username = models.CharField(max_length=100, blank=True)
    access_token = models.TextField(blank=True, help_text="Encrypted (Fernet).")
    refresh_token = models.TextField(blank=True, help_text="Encrypted (Fernet).")
    token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.CharField(max_length=255, blank=True, help_text="Space-separated.")
    linked_at = models.DateTimeField()
    guild_member = models.BooleanField(default=False)
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.username or self.discord_user_id} → {self.user}"

    def __repr__(self) -> str:  # never show token ciphertext either
        return f"<DiscordLink user={self.user_id} discord={self.discord_user_id}>"


class DiscordGuildConfig(models.Model):
    """The admin-configured Discord guild: one row at most (pk is always 1).

    Blank fields fall back to the environment (COACHGATE_DISCORD_*, coachgate.kit.config).
    """

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    guild_id = models.CharField(max_length=32, blank=True)
    bot_token = models.TextField(blank=True, help_text="Encrypted (Fernet).")
    category_id = models.CharField(
        max_length=32, blank=True,
        help_text="Platform category for session channels; blank: the access layer makes one.",
    )
    archive_category_id = models.CharField(max_length=32, blank=True)
    api_url = models.URLField(blank=True, help_text="Blank: COACHGATE_DISCORD_API_URL.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Discord guild configuration"
        verbose_name_plural = "Discord guild configuration"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="discord_guild_config_singleton")
        ]

    def __str__(self) -> str:
        return f"Discord guild {self.guild_id or '(from environment)'}"

    def __repr__(self) -> str:
        return f"<DiscordGuildConfig guild={self.guild_id}>"
