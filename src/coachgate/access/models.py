"""Access rows: the truth about each session's private access.

A task is only a wake-up; what the worker must do is always derivable from these rows and
the session (STYLE rule 4: timers are rows). ``next_due_at`` is the session's next gate that
still needs a run; the sweep finds rows that are behind with one indexed range query.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from coachgate.catalog.models import Offer
from coachgate.scheduling.models import Session

from .rules import Phase


class ErrorKind(models.TextChoices):
    NONE = "", "none"
    RETRY = "retry", "retry later"
    ACTION = "action", "someone must act"
    # The run raised on the session's own data (a policy stored before validation existed)
    # or a bug: retried with backoff until an admin fixes the data.
    DATA = "data", "bad data or a bug"


class SessionAccess(models.Model):
    session = models.OneToOneField(Session, on_delete=models.CASCADE, primary_key=True,
                                   related_name="access")
    discord = models.BooleanField(default=False, help_text="Delivered in a Discord channel.")
    mode = models.CharField(max_length=20, blank=True)
    phase = models.CharField(max_length=16, default=Phase.NONE,
                             choices=[(p.value, p.value) for p in Phase],
                             help_text="The access that exists now (what the last run achieved).")
    window_start = models.DateTimeField(help_text="Provision gate: a channel may exist from here.")
    window_end = models.DateTimeField(help_text="Revoke gate: no access from here on.")
    next_due_at = models.DateTimeField(null=True, blank=True)
    # A run holds the row for a short lease instead of a database lock, so no transaction
    # stays open across Discord calls (SQLite has one writer) and a crashed worker's claim
    # simply expires.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    guild_id = models.CharField(max_length=32, blank=True)
    channel_id = models.CharField(max_length=32, blank=True)
    category_id = models.CharField(max_length=32, blank=True)
    role_id = models.CharField(max_length=32, blank=True)
    archived = models.BooleanField(default=False)
    # Written (and committed) before a channel is created: if the worker dies between
    # Discord's answer and our write, the next run finds the channel by its tag.
    create_intent_at = models.DateTimeField(null=True, blank=True)
    granted = models.JSONField(default=list, blank=True,
                               help_text="Discord user ids that currently hold access.")
    reminder_sent_before_s = models.IntegerField(null=True, blank=True)
    access_open_sent = models.BooleanField(default=False)
    error_kind = models.CharField(max_length=8, blank=True, choices=ErrorKind.choices)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Consecutive failed runs.")
    runs = models.PositiveIntegerField(default=0)
    discord_calls = models.PositiveIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True,
                                       help_text="Last drift check against Discord.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "session access"
        verbose_name_plural = "session access"
        indexes = [
            # Due-work lookup: WHERE next_due_at <= now ORDER BY next_due_at. Partial, so
            # finished sessions (the vast majority) are not in the index at all.
            models.Index(fields=["next_due_at"], name="access_due_idx",
                         condition=Q(next_due_at__isnull=False)),
            models.Index(fields=["window_start", "window_end"], name="access_window_idx",
                         condition=Q(discord=True)),
            models.Index(fields=["channel_id"], name="access_channel_idx",
                         condition=~Q(channel_id="")),
        ]

    def __str__(self) -> str:
        return f"access of session {self.session_id}: {self.phase}"


class DiscordCall(models.Model):
    """Every Discord call a gate run made, for the admin pages and the benchmarks."""

    access = models.ForeignKey(SessionAccess, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="calls")
    at = models.DateTimeField()
    method = models.CharField(max_length=8)
    route = models.CharField(max_length=120)
    status = models.PositiveSmallIntegerField()
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["access", "at"], name="access_call_session_idx")]


class Category(models.Model):
    """A Discord category that holds coachgate's session channels (50 channels each)."""

    guild_id = models.CharField(max_length=32)
    category_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    configured = models.BooleanField(default=False, help_text="The admin's platform category.")
    full = models.BooleanField(default=False, help_text="Discord said it holds 50 channels.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "categories"


class OfferRole(models.Model):
    """offer_role mode (reference 002): one "Coaching Access" role and channel per offer."""

    offer = models.OneToOneField(Offer, on_delete=models.CASCADE, related_name="discord_role")
    guild_id = models.CharField(max_length=32)
    role_id = models.CharField(max_length=32, blank=True)
    channel_id = models.CharField(max_length=32, blank=True)


class GuildState(models.Model):
    """What the last look at the guild found: channels that are not coachgate's count
    against Discord's 500-channel limit when bookings are checked for capacity."""

    guild_id = models.CharField(max_length=32, primary_key=True)
    other_channels = models.PositiveIntegerField(default=0)
    checked_at = models.DateTimeField()


class GateRun(models.Model):
    """One run of a gate at its due time: when it was due, when the worker ran it and
    whether it succeeded. The admin statistics read lateness (p50/p99 per kind) and the
    provisioning success rate from these rows, not from any process's memory."""

    # Indexed although the statistics read by due time: deleting a session's access row
    # cascades here, and without the index each such delete would scan every run.
    access = models.ForeignKey(SessionAccess, on_delete=models.CASCADE, related_name="gate_runs")
    kind = models.CharField(max_length=16)
    due_at = models.DateTimeField()
    ran_at = models.DateTimeField()
    late_ms = models.PositiveIntegerField(help_text="How late the run began (ms).")
    ok = models.BooleanField(help_text="The run achieved what the gate asks.")

    class Meta:
        indexes = [
            # The statistics' one range scan: a covering index (PostgreSQL reads the index
            # only; SQLite ignores INCLUDE and reads the rows).
            models.Index(fields=["due_at"], include=["kind", "late_ms", "ok"],
                         name="access_gate_run_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} gate of session {self.access_id}: {self.late_ms} ms late"
