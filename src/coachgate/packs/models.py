"""Packs, the sessions booked from them, coach seats and the waitlist.

``Pack`` and ``Seat`` are timer rows (``next_due_at`` + lease, see kit.due): a pack's gate
expires it; a seat's gate sends the final warning and releases it. The database keeps the
invariants: 0 ≤ remaining ≤ size, one number per live use of a pack, one booking per use,
one holding seat per coach and student.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from coachgate.catalog.models import CoachProfile, Offer
from coachgate.kit.due import TimerRow
from coachgate.scheduling.models import Booking

from .rules import PackStatus, SeatStatus

HOLDING_VALUES = [SeatStatus.ACTIVE.value, SeatStatus.GRACE.value]


class Seat(TimerRow):
    """A student's place with a coach, held by their packs (capacity: seat_capacity)."""

    coach = models.ForeignKey(CoachProfile, on_delete=models.PROTECT, related_name="seats")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                related_name="seats")
    pack = models.ForeignKey("Pack", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="+", help_text="The latest pack holding the seat.")
    status = models.CharField(max_length=12, default=SeatStatus.ACTIVE.value,
                              choices=[(s.value, s.value) for s in SeatStatus])
    taken_at = models.DateTimeField()
    grace_ends_at = models.DateTimeField(null=True, blank=True)
    final_warning_sent = models.BooleanField(default=False)
    released_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_due_at"], name="packs_seat_due_idx",
                         condition=Q(next_due_at__isnull=False)),
            models.Index(fields=["coach", "status"], name="packs_seat_coach_status_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["coach", "student"],
                                    condition=Q(status__in=HOLDING_VALUES),
                                    name="packs_one_holding_seat"),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in SeatStatus]),
                                   name="packs_seat_status_valid"),
            models.CheckConstraint(
                condition=~Q(status=SeatStatus.GRACE.value) | Q(grace_ends_at__isnull=False),
                name="packs_seat_grace_has_end"),
        ]

    def __str__(self) -> str:
        return f"Seat {self.pk} coach {self.coach_id} student {self.student_id} ({self.status})"


class Pack(TimerRow):
    """N sessions of one offer, paid up front (the offer's price is the whole pack's)."""

    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                related_name="packs")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="packs")
    coach = models.ForeignKey(CoachProfile, on_delete=models.PROTECT, related_name="packs")
    seat = models.ForeignKey(Seat, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="packs")
    size = models.PositiveIntegerField()
    remaining = models.PositiveIntegerField()
    price_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=12, default=PackStatus.ACTIVE.value,
                              choices=[(s.value, s.value) for s in PackStatus])
    purchased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    depleted_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True,
                                     help_text="When an expired pack's unused value was forfeited.")
    renewal_of = models.OneToOneField("self", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="renewed_by")
    one_left_reminded = models.BooleanField(default=False)
    complete_reminded = models.BooleanField(default=False)
    # Idempotency-Key of the purchase request, with its digest: a retried purchase returns
    # this pack instead of buying another.
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    request_digest = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["next_due_at"], name="packs_pack_due_idx",
                         condition=Q(next_due_at__isnull=False)),
            models.Index(fields=["student", "coach", "status"], name="packs_pack_owner_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("size")) & Q(size__gte=1),
                name="packs_remaining_within_size"),
            models.CheckConstraint(condition=Q(price_minor__gte=0),
                                   name="packs_price_nonnegative"),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in PackStatus]),
                                   name="packs_pack_status_valid"),
            models.CheckConstraint(
                condition=~Q(status=PackStatus.DEPLETED.value) | Q(remaining=0),
                name="packs_depleted_has_none_left"),
            models.UniqueConstraint(fields=["student", "idempotency_key"],
                                    condition=~Q(idempotency_key=""),
                                    name="packs_purchase_idempotency_key_once"),
        ]

    def __str__(self) -> str:
        return f"Pack {self.pk} ({self.remaining}/{self.size} left, {self.status})"


class PackUse(models.Model):
    """One booking made from a pack: its number in the pack (1-based, booking order) and the
    value it carries. Held until settled, then consumed (a session used) or freed (given
    back: coach cancellation, coach no-show, early end, free cancellation)."""

    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, related_name="pack_use")
    pack = models.ForeignKey(Pack, on_delete=models.PROTECT, related_name="uses")
    number = models.PositiveIntegerField()
    value_minor = models.BigIntegerField()
    booked_at = models.DateTimeField()
    consumed_at = models.DateTimeField(null=True, blank=True)
    freed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pack", "number"], condition=Q(freed_at__isnull=True),
                                    name="packs_one_live_use_per_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="packs_use_number_positive"),
            models.CheckConstraint(condition=Q(value_minor__gte=0),
                                   name="packs_use_value_nonnegative"),
            models.CheckConstraint(
                condition=Q(consumed_at__isnull=True) | Q(freed_at__isnull=True),
                name="packs_use_consumed_or_freed"),
        ]

    def __str__(self) -> str:
        return f"Pack {self.pack_id} session {self.number} (booking {self.booking_id})"


class WaitlistEntry(models.Model):
    """A student waiting for a seat with a coach; told (once) when one is released."""

    coach = models.ForeignKey(CoachProfile, on_delete=models.CASCADE, related_name="waitlist")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="waitlist_entries")
    created_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True,
                                        help_text="When the student bought a pack.")

    class Meta:
        verbose_name_plural = "waitlist entries"
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["coach", "student"],
                                    condition=Q(fulfilled_at__isnull=True),
                                    name="packs_one_open_waitlist_entry"),
        ]
        indexes = [models.Index(fields=["coach", "created_at"], name="packs_waitlist_idx")]

    def __str__(self) -> str:
        return f"Waiting: student {self.student_id} for coach {self.coach_id}"
