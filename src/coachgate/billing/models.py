"""Money rows. Amounts are integer minor units; every row that moves money has a key the
database keeps unique, so a repeated run, a duplicate event or a race never moves it twice.

* ``BookingCharge``: what one booking costs and how it is funded (per session, or a pack).
* ``SessionBilling``: a session's settlement gate (a timer row, like access rows).
* ``Settlement``: the outcome of one booking and its split; one per booking, ever.
* ``Payment``: money at the gateway (authorise, capture, cancel, refund), with its own gate.
* ``JournalEntry`` + ``LedgerLine``: the double-entry ledger; each entry's lines sum to 0.
* ``WebhookEvent``: incoming gateway events, stored once by the provider's event id.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from coachgate.catalog.models import CoachProfile
from coachgate.kit.due import TimerRow
from coachgate.scheduling.models import Booking, Session

from .rules import Outcome


class BillingProfile(models.Model):
    """A student's customer and saved card at the gateway."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="billing_profile")
    gateway = models.CharField(max_length=16)
    customer_ref = models.CharField(max_length=64, blank=True)
    setup_ref = models.CharField(max_length=64, blank=True)
    payment_method_ref = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class BookingCharge(models.Model):
    """The price a booking was made at, and what pays for it ("" = its own payment)."""

    booking = models.OneToOneField(Booking, on_delete=models.CASCADE, primary_key=True,
                                   related_name="charge")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                related_name="+")
    coach = models.ForeignKey(CoachProfile, on_delete=models.PROTECT, related_name="+")
    price_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    funded_by = models.CharField(max_length=40, blank=True,
                                 help_text='"" = charged per session; "pack:<id>" = prepaid.')
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(price_minor__gte=0),
                                              name="booking_charge_price_nonnegative")]


class SessionBilling(TimerRow):
    """A session's settlement gate: due at the scheduled end, or at once when an outcome or a
    cancellation is waiting to be settled."""

    session = models.OneToOneField(Session, on_delete=models.CASCADE, primary_key=True,
                                   related_name="billing")
    settle_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "session settlement gate"
        indexes = [models.Index(fields=["next_due_at"], name="billing_session_due_idx",
                                condition=Q(next_due_at__isnull=False))]


OUTCOME_CHOICES = [(o.value, o.value.replace("_", " ")) for o in Outcome]


class Settlement(models.Model):
    """How one booking was settled. Unique per booking: a second settlement cannot exist."""

    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, related_name="settlement")
    session = models.ForeignKey(Session, on_delete=models.PROTECT, related_name="settlements")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                related_name="+")
    coach = models.ForeignKey(CoachProfile, on_delete=models.PROTECT, related_name="settlements")
    outcome = models.CharField(max_length=24, choices=OUTCOME_CHOICES)
    currency = models.CharField(max_length=3)
    price_minor = models.BigIntegerField()
    charge_minor = models.BigIntegerField()
    fee_minor = models.BigIntegerField()
    payout_minor = models.BigIntegerField()
    funded_by = models.CharField(max_length=40, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    settled_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["coach", "settled_at"]),
                   # The admin statistics (billing.services.stats): sums per currency over a
                   # period from the index alone on PostgreSQL (SQLite ignores INCLUDE).
                   models.Index(fields=["settled_at", "currency"],
                                include=["charge_minor", "fee_minor", "payout_minor"],
                                name="billing_settlement_stats_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(charge_minor=F("fee_minor") + F("payout_minor")),
                                   name="settlement_charge_is_fee_plus_payout"),
            models.CheckConstraint(
                condition=Q(fee_minor__gte=0) & Q(payout_minor__gte=0)
                & Q(charge_minor__lte=F("price_minor")),
                name="settlement_amounts_in_range"),
        ]


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "pending"  # nothing at the gateway yet
    AUTHORIZED = "authorized", "authorized"  # held on the card
    ACTION_NEEDED = "action_needed", "student must act"  # declined / needs authentication
    CAPTURED = "captured", "captured"
    CANCELLED = "cancelled", "cancelled"  # released or never taken (charge 0)


class Payment(TimerRow):
    """Money at the gateway for one booking ("booking:<id>") or pack ("pack:<id>").

    ``capture_minor`` is set by settlement (the amount to take, 0 = release); the payment
    gate then captures or cancels. ``refund_minor`` is what must be given back in total.
    """

    key = models.CharField(max_length=40, unique=True)
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                related_name="payments")
    gateway = models.CharField(max_length=16)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField(help_text="The most this payment may take.")
    capture_minor = models.BigIntegerField(null=True, blank=True)
    captured_minor = models.BigIntegerField(default=0)
    refund_minor = models.BigIntegerField(default=0)
    refunded_minor = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=PaymentStatus.choices,
                              default=PaymentStatus.PENDING)
    ref = models.CharField(max_length=64, blank=True, help_text="The gateway's payment id.")
    authorize_at = models.DateTimeField()
    # Bumped by each decline: a new card is a new request (a new idempotency key), while a
    # retry after a timeout or an outage replays the same key and cannot take money twice.
    declines = models.PositiveIntegerField(default=0)
    decline_code = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["next_due_at"], name="billing_payment_due_idx",
                                condition=Q(next_due_at__isnull=False)),
                   models.Index(fields=["ref"], name="billing_payment_ref_idx",
                                condition=~Q(ref=""))]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0) & Q(captured_minor__gte=0)
                & Q(captured_minor__lte=F("amount_minor"))
                & Q(refunded_minor__gte=0) & Q(refunded_minor__lte=F("captured_minor"))
                & Q(refund_minor__lte=F("amount_minor")),
                name="payment_amounts_in_range"),
            models.CheckConstraint(
                condition=Q(capture_minor__isnull=True)
                | (Q(capture_minor__gte=0) & Q(capture_minor__lte=F("amount_minor"))),
                name="payment_capture_within_amount"),
        ]


class JournalEntry(models.Model):
    """One financial event. ``key`` is its idempotency key: recording it twice is a no-op."""

    key = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=24)  # settle, capture, refund, payout, purchase, ...
    currency = models.CharField(max_length=3)
    session = models.ForeignKey(Session, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    booking = models.ForeignKey(Booking, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="+")
    memo = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "journal entries"
        indexes = [models.Index(fields=["at"])]


class LedgerLine(models.Model):
    """A signed amount on one account: what the platform owes that party (negative: what
    the party owes). Accounts: ``student:<user id>``, ``coach:<coach profile id>``,
    ``platform:fees``, ``platform:deferred`` (prepaid, not yet earned), ``gateway:<name>``
    (money the gateway holds for us, negative)."""

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.CharField(max_length=40)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "currency", "at"])]
        constraints = [models.CheckConstraint(condition=~Q(amount_minor=0),
                                              name="ledger_line_nonzero")]


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", "received"
    PROCESSED = "processed", "processed"
    IGNORED = "ignored", "ignored"
    FAILED = "failed", "failed"


class WebhookEvent(models.Model):
    gateway = models.CharField(max_length=16)
    event_id = models.CharField(max_length=80)
    type = models.CharField(max_length=80)
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=WebhookStatus.choices,
                              default=WebhookStatus.RECEIVED)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "event_id"],
                                               name="webhook_event_once")]


class MeetingEvidence(models.Model):
    """What the meeting reported: when it started and ended. Fed by the evidence API (admins,
    the session's coach) now and by video-provider webhooks later; read by settlement."""

    session = models.OneToOneField(Session, on_delete=models.CASCADE, primary_key=True,
                                   related_name="evidence")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class Attendance(models.Model):
    """When a participant first joined the meeting (guards against wrong no-show marks)."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="attendance")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="+")
    joined_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "user"],
                                               name="attendance_once_per_user")]
