from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from .rules import MIN_SLOT_STEP_MINUTES


def new_availability_version() -> int:
    return secrets.randbelow(2**31 - 1) + 1


class CoachStatus(models.TextChoices):
    APPROVED = "approved", "Approved"
    SUSPENDED = "suspended", "Suspended"


class CoachProfile(models.Model):
    """A coach's public profile. It exists only once an admin approved the application."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="coach_profile"
    )
    display_name = models.CharField(max_length=120)
    bio = models.TextField(blank=True)
    specialties = models.JSONField(default=list, blank=True)
    timezone = models.CharField(max_length=64, help_text="IANA zone of the weekly availability.")
    seat_capacity = models.PositiveIntegerField(
        default=20, help_text="How many students with a pack the coach takes at once."
    )
    status = models.CharField(
        max_length=16, choices=CoachStatus.choices, default=CoachStatus.APPROVED
    )
    approved_at = models.DateTimeField()
    # Filled by the reviews feature; kept here so browsing can sort without a join.
    rating_average = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    rating_count = models.PositiveIntegerField(default=0)
    # A new random value whenever weekly rules or date overrides change (scheduling.signals),
    # so readers can cache availability per (coach, version). Random rather than a counter:
    # a recreated profile that reuses a primary key (SQLite reuses row ids) must not match a
    # cache entry of the old one.
    availability_version = models.PositiveIntegerField(default=new_availability_version,
                                                       editable=False)
    # 0 = no photo; otherwise a new random value each time the coach sets one, so the
    # photo's URL (?v=) changes and caches may keep a version for good (catalog.photos).
    photo_version = models.PositiveIntegerField(default=0, editable=False)

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_approved(self) -> bool:
        return self.status == CoachStatus.APPROVED


class OfferStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class SessionType(models.TextChoices):
    VIDEO = "video", "Video"
    AUDIO = "audio", "Audio"
    PHONE = "phone", "Phone"


class Delivery(models.TextChoices):
    DISCORD_VOICE = "discord_voice", "Discord voice channel"
    ZOOM = "zoom", "Zoom"
    GOOGLE_MEET = "google_meet", "Google Meet"
    JITSI = "jitsi", "Jitsi"
    PHONE = "phone", "Phone"


class Offer(models.Model):
    coach = models.ForeignKey(CoachProfile, on_delete=models.PROTECT, related_name="offers")
    title = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    price_minor = models.BigIntegerField(help_text="Price in the currency's minor unit.")
    currency = models.CharField(max_length=3)
    duration_minutes = models.PositiveIntegerField()
    session_type = models.CharField(max_length=8, choices=SessionType.choices,
                                    default=SessionType.VIDEO)
    delivery = models.CharField(max_length=16, choices=Delivery.choices)
    intake_fields = models.JSONField(default=list, blank=True)
    thumbnail_url = models.URLField(blank=True)
    # The offer's picture: an upload re-encoded by catalog.thumbnails (the file's name under
    # MEDIA_ROOT/offers, chosen by coachgate), else a generated card in ``card_style``.
    thumbnail = models.CharField(max_length=40, blank=True, default="")
    card_style = models.CharField(max_length=16, default="ocean")
    capacity = models.PositiveIntegerField(default=1, help_text="1 = one-to-one, >1 = group.")
    pack_size = models.PositiveIntegerField(default=1, help_text="1 = single session.")
    # Booking rules
    buffer_before_minutes = models.PositiveIntegerField(default=0)
    buffer_after_minutes = models.PositiveIntegerField(default=0)
    min_notice_minutes = models.PositiveIntegerField(default=120)
    horizon_days = models.PositiveIntegerField(default=60)
    max_sessions_per_day = models.PositiveIntegerField(null=True, blank=True)
    slot_step_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty = the session duration."
    )
    free_cancellation_hours = models.PositiveIntegerField(default=24)
    # Policies read by the access and billing domains; validated by catalog.rules.
    access_policy = models.JSONField(default=dict, blank=True)
    money_policy = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=OfferStatus.choices, default=OfferStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "coach"])]
        constraints = [
            models.CheckConstraint(condition=Q(price_minor__gte=0), name="offer_price_nonnegative"),
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=1) & Q(duration_minutes__lte=1440),
                name="offer_duration_range",
            ),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="offer_capacity_positive"),
            models.CheckConstraint(condition=Q(pack_size__gte=1), name="offer_pack_positive"),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "published", "archived"]),
                name="offer_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(session_type__in=["video", "audio", "phone"]),
                name="offer_session_type_valid",
            ),
            # The slot engine steps at least MIN_SLOT_STEP_MINUTES (5) minutes.
            models.CheckConstraint(
                condition=(Q(slot_step_minutes__isnull=True)
                           | Q(slot_step_minutes__gte=MIN_SLOT_STEP_MINUTES)),
                name="offer_slot_step_min",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        """The API's checks for whoever edits an offer through a form (the admin)."""
        from django.core.exceptions import ValidationError

        from coachgate.kit.errors import InvalidInput

        from .rules import OFFER_INT_BOUNDS, clean_offer_fields

        names = [*OFFER_INT_BOUNDS, "title", "currency", "intake_fields", "access_policy",
                 "money_policy", "card_style", "thumbnail"]
        try:
            # None: a field its form already refused (or an empty nullable one).
            clean = clean_offer_fields({name: getattr(self, name) for name in names
                                        if getattr(self, name) is not None})
        except InvalidInput as exc:
            where = str(exc.details.get("field", "")).split(".")[0].split("[")[0]
            raise ValidationError({where if where in names else "__all__": exc.message}
                                  ) from None
        for name in ("intake_fields", "access_policy", "money_policy"):
            if name in clean:
                setattr(self, name, clean[name])

    @property
    def is_bookable(self) -> bool:
        return self.status == OfferStatus.PUBLISHED and self.coach.is_approved
