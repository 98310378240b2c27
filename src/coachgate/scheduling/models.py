from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from coachgate.catalog.models import CoachProfile, Offer

from .lifecycle import CancellationOutcome, SessionStatus

STATUS_CHOICES = [(s.value, s.value.replace("_", " ").capitalize()) for s in SessionStatus]


class WeeklyAvailability(models.Model):
    """A weekly rule in the coach's own time zone: weekday + local wall-clock hours."""

    coach = models.ForeignKey(CoachProfile, on_delete=models.CASCADE, related_name="weekly_rules")
    weekday = models.PositiveSmallIntegerField(help_text="0 = Monday … 6 = Sunday")
    start_time = models.TimeField()
    end_time = models.TimeField()

    class Meta:
        verbose_name = "weekly availability rule"
        verbose_name_plural = "weekly availability rules"
        ordering = ["weekday", "start_time"]
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="weekly_weekday_range"),
            models.CheckConstraint(condition=Q(end_time__gt=F("start_time")),
                                   name="weekly_end_after_start"),
        ]


class OverrideKind(models.TextChoices):
    BLOCKED = "blocked", "Blocked"
    EXTRA = "extra", "Extra hours"


class AvailabilityOverride(models.Model):
    """A date-specific change: a blocked day (or hours), or extra hours."""

    coach = models.ForeignKey(CoachProfile, on_delete=models.CASCADE, related_name="overrides")
    day = models.DateField()
    kind = models.CharField(max_length=8, choices=OverrideKind.choices)
    start_time = models.TimeField(null=True, blank=True)
    end_time = models.TimeField(null=True, blank=True)

    class Meta:
        verbose_name = "date override"
        ordering = ["day", "start_time"]
        indexes = [models.Index(fields=["coach", "day"])]

    def clean(self) -> None:
        """The API's checks for the admin's form: a day in 1900-8999 and a valid range."""
        from django.core.exceptions import ValidationError

        from coachgate.kit import clock

        from .rules import DateOverride

        if self.day is None:
            return  # the form refused it already
        if not clock.EARLIEST.date() <= self.day < clock.LATEST.date():
            raise ValidationError({"day": "The day must be between the years 1900 and 9000."})
        try:
            # kind is one of the field's choices, checked by the form before clean()
            DateOverride(self.day, self.kind,  # type: ignore[arg-type]  # kind is a DateOverride kind: the field's choices say so
                         self.start_time, self.end_time)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Session(models.Model):
    """A block of the coach's time. One-to-one offers have one booking; group offers more.

    The database guarantees that no two live sessions of a coach overlap: an exclusion
    constraint on PostgreSQL, triggers on SQLite (migration 0002).
    """

    coach = models.ForeignKey(CoachProfile, on_delete=models.PROTECT, related_name="sessions")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="sessions")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=STATUS_CHOICES,
                              default=SessionStatus.SCHEDULED)
    capacity = models.PositiveIntegerField(default=1)
    seats_taken = models.PositiveIntegerField(default=0)
    reschedule_count = models.PositiveIntegerField(default=0)
    # The offer's policies when the session was booked (SPEC: later edits of the offer apply
    # to later bookings only). Access and billing read these, never the live offer; a
    # rescheduled session keeps them. A group session's later seats share them.
    access_policy = models.JSONField(default=dict, blank=True)
    money_policy = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["coach", "starts_at"]),
            models.Index(fields=["status", "starts_at"]),
            models.Index(fields=["offer", "starts_at"]),
            # The admin statistics (scheduling.stats): per-day and per-coach aggregates over
            # a period, read from the index alone on PostgreSQL (INCLUDE; SQLite ignores it).
            models.Index(fields=["starts_at", "status"], include=["coach", "ends_at"],
                         name="session_stats_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")),
                                   name="session_end_after_start"),
            models.CheckConstraint(condition=Q(seats_taken__lte=F("capacity")),
                                   name="session_seats_within_capacity"),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in SessionStatus]),
                                   name="session_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Session {self.pk} {self.starts_at:%Y-%m-%d %H:%M}Z ({self.status})"


class BookingStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CANCELLED = "cancelled", "Cancelled"


class Booking(models.Model):
    """A student's seat in a session, with their intake answers."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="bookings")
    student = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings"
    )
    status = models.CharField(max_length=16, choices=BookingStatus.choices,
                              default=BookingStatus.ACTIVE)
    intake_answers = models.JSONField(default=dict, blank=True)
    booked_at = models.DateTimeField()
    # The offer's cancellation policy when this booking was made (a snapshot, like the price).
    free_cancellation_hours = models.PositiveIntegerField(default=24)
    # Idempotency-Key of the request that made the booking, with a digest of that request,
    # so a retried POST returns this booking instead of making another.
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    request_digest = models.CharField(max_length=64, blank=True, default="")
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    cancellation_outcome = models.CharField(
        max_length=16, blank=True, choices=[(c.value, c.value) for c in CancellationOutcome]
    )

    class Meta:
        indexes = [models.Index(fields=["student", "status"])]
        constraints = [
            models.UniqueConstraint(fields=["session", "student"], condition=Q(status="active"),
                                    name="one_active_booking_per_student_and_session"),
            models.UniqueConstraint(fields=["student", "idempotency_key"],
                                    condition=~Q(idempotency_key=""),
                                    name="booking_idempotency_key_once"),
        ]


class SessionEvent(models.Model):
    """The audit trail: every change of a session, who made it, when, before and after."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="events")
    booking = models.ForeignKey(Booking, null=True, blank=True, on_delete=models.SET_NULL)
    kind = models.CharField(max_length=32)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField()
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["session", "at"])]
