from __future__ import annotations

from django.conf import settings
from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    DISCORD_DM = "discord_dm", "Discord DM"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (retries exhausted or refused)"
    SKIPPED = "skipped", "Skipped (no address)"
    # The worker died mid-send: it may or may not have gone out, so it is never resent.
    ABANDONED = "abandoned", "Abandoned (outcome unknown)"


class Notification(models.Model):
    """One message to one user on one channel: the outbox row is the truth.

    ``(key, channel)`` is unique, so asking twice for the same notification (a repeated
    gate run, a retried task) inserts nothing the second time and sends nothing again.
    """

    key = models.CharField(max_length=200, help_text="Idempotency key, e.g. "
                           "'reminder:session:12:900:user:5'.")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="notifications")
    template = models.CharField(max_length=64)
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True,
                                      help_text="When the current/last send began.")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "channel"], name="notification_once"),
            models.CheckConstraint(condition=models.Q(channel__in=[c.value for c in Channel]),
                                   name="notification_channel_valid"),
            models.CheckConstraint(condition=models.Q(status__in=[s.value for s in Status]),
                                   name="notification_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notify_due")]

    def __str__(self) -> str:
        return f"{self.template} → {self.user_id} by {self.channel} ({self.status})"
