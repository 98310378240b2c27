"""Catalog use cases: approving coaches, coach profiles, offers and their lifecycle."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Min, Q, QuerySet

from coachgate.accounts.models import ApplicationStatus, CoachApplication, Role, User
from coachgate.accounts.services import lock_pending_application, validate_timezone
from coachgate.kit import clock, money
from coachgate.kit.errors import Forbidden, InvalidInput, NotFound

from . import photos, rules, thumbnails
from .models import CoachProfile, CoachStatus, Delivery, Offer, OfferStatus, SessionType

OFFER_EDITABLE_FIELDS = frozenset({
    "title", "description", "price_minor", "currency", "duration_minutes", "session_type",
    "delivery", "intake_fields", "thumbnail_url", "capacity", "pack_size",
    "buffer_before_minutes", "buffer_after_minutes", "min_notice_minutes", "horizon_days",
    "max_sessions_per_day", "slot_step_minutes", "free_cancellation_hours", "access_policy",
    "money_policy", "card_style", "thumbnail",
})
OFFER_REQUIRED_FIELDS = frozenset({"title", "price_minor", "currency", "duration_minutes",
                                   "delivery"})
PROFILE_EDITABLE_FIELDS = frozenset({"display_name", "bio", "specialties", "timezone",
                                     "seat_capacity"})


@transaction.atomic
def approve_application(
    actor: User, application_id: int, *, note: str = "", now: datetime | None = None
) -> CoachApplication:
    app = lock_pending_application(actor, application_id)
    when = now or clock.now()
    app.status = ApplicationStatus.APPROVED
    app.reviewed_at = when
    app.reviewed_by = actor
    app.decision_note = note
    app.save()
    CoachProfile.objects.update_or_create(
        user=app.user,
        defaults={
            "display_name": app.display_name, "bio": app.bio, "specialties": app.specialties,
            "timezone": app.timezone, "status": CoachStatus.APPROVED, "approved_at": when,
        },
    )
    # The zone the applicant gave becomes the account's when it is still the default, so
    # the new coach's pages show their own times, not UTC.
    User.objects.filter(pk=app.user_id).update(role=Role.COACH)
    User.objects.filter(pk=app.user_id, timezone="UTC").update(timezone=app.timezone)
    return app


def coach_profile_of(actor: User) -> CoachProfile:
    profile = CoachProfile.objects.filter(user=actor).first()
    if profile is None:
        raise Forbidden("Only an approved coach can do this.")
    return profile


def coach_offer_counts(actor: User) -> dict[str, int]:
    """How many offers the coach has per status, and ``discord``: how many of the
    non-archived ones are delivered in Discord (one aggregate query)."""
    got = Offer.objects.filter(coach__user=actor).aggregate(
        draft=Count("pk", filter=Q(status=OfferStatus.DRAFT)),
        published=Count("pk", filter=Q(status=OfferStatus.PUBLISHED)),
        archived=Count("pk", filter=Q(status=OfferStatus.ARCHIVED)),
        discord=Count("pk", filter=~Q(status=OfferStatus.ARCHIVED)
                      & Q(delivery=Delivery.DISCORD_VOICE)))
    return {k: int(v or 0) for k, v in got.items()}


def update_coach_profile(actor: User, changes: dict[str, Any]) -> CoachProfile:
    profile = coach_profile_of(actor)
    unknown = set(changes) - PROFILE_EDITABLE_FIELDS
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "timezone" in changes:
        validate_timezone(changes["timezone"])
    if "display_name" in changes and not str(changes["display_name"]).strip():
        raise InvalidInput("The display name cannot be empty.", details={"field": "display_name"})
    seats = changes.get("seat_capacity", 0)
    if isinstance(seats, bool) or not isinstance(seats, int) or not 0 <= seats <= 10000:
        raise InvalidInput("seat_capacity must be a whole number between 0 and 10000.",
                           details={"field": "seat_capacity"})
    for key, value in changes.items():
        setattr(profile, key, value)
    profile.save()
    return profile


def set_coach_photo(actor: User, data: bytes) -> CoachProfile:
    """The coach's photo from an upload's bytes: validated and re-encoded by catalog.photos
    (the stored files are new JPEGs, never the uploaded bytes)."""
    profile = coach_profile_of(actor)
    rendered = photos.render(photos.decode(data))
    photos.store(profile.pk, rendered)
    profile.photo_version = secrets.randbelow(2**31 - 2) + 1
    profile.save(update_fields=["photo_version"])
    return profile


def remove_coach_photo(actor: User) -> CoachProfile:
    profile = coach_profile_of(actor)
    profile.photo_version = 0
    profile.save(update_fields=["photo_version"])
    transaction.on_commit(lambda: photos.remove(profile.pk))
    return profile


def coach_photo_path(viewer: User | None, coach_id: int, size: int) -> tuple[Path, int]:
    """Where a coach's photo of ``size`` is, with its version, for whoever may see it: an
    approved coach's photo is public; a suspended coach's only for that coach."""
    profile = CoachProfile.objects.filter(pk=coach_id).first()
    visible = profile is not None and (
        profile.is_approved or (viewer is not None and profile.user_id == viewer.pk))
    if profile is None or not visible or not profile.photo_version or size not in photos.SIZES:
        raise NotFound("No such photo.")
    path = photos.photo_path(profile.pk, size)
    if not path.is_file():
        raise NotFound("No such photo.")
    return path, profile.photo_version


@dataclass(frozen=True)
class Rate:
    currency: str
    low_minor: int
    high_minor: int


def coach_rates(coach: CoachProfile) -> list[Rate]:
    """The price range of the coach's published offers, per currency: the rates the
    profile and the public page show (each offer keeps its own price)."""
    rows = (Offer.objects.filter(coach=coach, status=OfferStatus.PUBLISHED)
            .values("currency").annotate(low=Min("price_minor"), high=Max("price_minor"))
            .order_by("currency"))
    return [Rate(r["currency"], r["low"], r["high"]) for r in rows]


def browse_coaches(
    *, specialty: str | None = None, order: str = "rating"
) -> list[CoachProfile]:
    """Approved coaches with at least one published offer, for students to browse."""
    qs = (
        CoachProfile.objects.filter(status=CoachStatus.APPROVED,
                                    offers__status=OfferStatus.PUBLISHED)
        .annotate(min_price=Min("offers__price_minor", filter=Q(offers__status="published")))
        .distinct()
    )
    coaches: list[CoachProfile] = list(qs)
    if specialty:
        wanted = specialty.strip().lower()
        coaches = [c for c in coaches if any(wanted == s.lower() for s in c.specialties)]
    if order == "price":
        coaches.sort(key=lambda c: (getattr(c, "min_price", 0), c.pk))
    elif order == "rating":
        coaches.sort(key=lambda c: (-(c.rating_average or 0), -c.rating_count, c.pk))
    else:
        raise InvalidInput("order is 'rating' or 'price'.", details={"field": "order"})
    return coaches


def get_coach(coach_id: int) -> CoachProfile:
    coach = CoachProfile.objects.filter(pk=coach_id, status=CoachStatus.APPROVED).first()
    if coach is None:
        raise NotFound("No such coach.")
    return coach


# --- offers ---------------------------------------------------------------------------

def _clean_offer_data(data: dict[str, Any]) -> dict[str, Any]:
    unknown = set(data) - OFFER_EDITABLE_FIELDS
    if unknown:
        raise InvalidInput(f"These fields cannot be set: {', '.join(sorted(unknown))}.")
    for name, choices in (("session_type", SessionType), ("delivery", Delivery)):
        if name in data and data[name] not in choices.values:
            raise InvalidInput(f"{name} is one of {', '.join(choices.values)}.",
                               details={"field": name})
    clean = rules.clean_offer_fields(data)
    if clean.get("thumbnail") and not thumbnails.exists(clean["thumbnail"]):
        raise InvalidInput("That picture is no longer stored; upload it again.",
                           details={"field": "thumbnail"})
    return clean


def _check_chargeable(price_minor: int, currency: str) -> None:
    """The configured payment gateway must be able to charge the price exactly (Stripe
    moves KWD in steps of 10 fils, MGA in whole ariary): refused here, never rounded."""
    problem = money.price_problem(price_minor, currency)
    if problem is not None:
        raise InvalidInput(problem[1], details={"field": problem[0]})


def create_offer(actor: User, data: dict[str, Any]) -> Offer:
    coach = coach_profile_of(actor)
    missing = sorted(OFFER_REQUIRED_FIELDS - set(data))
    if missing:
        raise InvalidInput(f"These fields are required: {', '.join(missing)}.",
                           details={"fields": missing})
    clean = _clean_offer_data(data)
    # Every default is written here, not left to the caller: an API body without
    # session_type once stored "" (the schema's default was dropped with the unset fields).
    clean.setdefault("session_type", SessionType.VIDEO)
    clean.setdefault("access_policy", rules.AccessPolicy().as_dict())
    clean.setdefault("money_policy", rules.MoneyPolicy().as_dict())
    _check_chargeable(clean["price_minor"], clean["currency"])
    return Offer.objects.create(coach=coach, status=OfferStatus.DRAFT, **clean)


def visible_offers(actor: User | None) -> QuerySet[Offer]:
    """Everyone sees bookable offers; coaches also see their own; admins see all."""
    qs = Offer.objects.select_related("coach")
    if actor is not None and actor.is_admin:
        return qs
    public = Q(status=OfferStatus.PUBLISHED, coach__status=CoachStatus.APPROVED)
    if actor is not None and actor.is_coach:
        return qs.filter(public | Q(coach__user=actor))
    return qs.filter(public)


def get_offer(actor: User | None, offer_id: int) -> Offer:
    offer = visible_offers(actor).filter(pk=offer_id).first()
    if offer is None:
        raise NotFound("No such offer.")
    return offer


def _owned_offer(actor: User, offer_id: int) -> Offer:
    offer = get_offer(actor, offer_id)
    if offer.coach.user_id != actor.pk and not actor.is_admin:
        raise Forbidden("Only the offer's coach can change it.")
    return offer


def update_offer(actor: User, offer_id: int, changes: dict[str, Any]) -> Offer:
    offer = _owned_offer(actor, offer_id)
    if offer.status == OfferStatus.ARCHIVED:
        raise InvalidInput("An archived offer cannot be changed.", details={"field": "status"})
    clean = _clean_offer_data(changes)
    old_picture = offer.thumbnail
    for key, value in clean.items():
        setattr(offer, key, value)
    if "price_minor" in clean or "currency" in clean:
        _check_chargeable(offer.price_minor, offer.currency)
    offer.save()
    if old_picture and old_picture != offer.thumbnail:
        # The replaced picture goes once the change is committed (a rollback keeps it).
        transaction.on_commit(lambda: thumbnails.delete(old_picture))
    return offer


def set_offer_status(
    actor: User, offer_id: int, target: str, *, now: datetime | None = None
) -> Offer:
    offer = _owned_offer(actor, offer_id)
    rules.check_offer_transition(offer.status, target)
    offer.status = target
    if target == OfferStatus.PUBLISHED:
        offer.published_at = now or clock.now()
    offer.save(update_fields=["status", "published_at", "updated_at"])
    return offer
