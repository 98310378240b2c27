"""Routes for coaches, profiles, approvals and offers. Thin: services decide."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from coachgate.accounts.api import ApplicationOut, ReviewIn
from coachgate.accounts.auth import API_AUTH, current_user, optional_user
from coachgate.accounts.models import CoachApplication
from coachgate.accounts.services import reject_application
from coachgate.kit.errors import InvalidInput
from coachgate.kit.schema import JsonInt

from . import services
from .models import CoachProfile, Offer
from .rules import MIN_SLOT_STEP_MINUTES

router = Router(tags=["catalog"], auth=API_AUTH)

SessionTypeT = Literal["video", "audio", "phone"]
DeliveryT = Literal["discord_voice", "zoom", "google_meet", "jitsi", "phone"]
IntakeTypeT = Literal["text", "textarea", "number", "email", "url", "choice", "checkbox"]


class IntakeFieldIn(Schema):
    key: str | None = Field(None, max_length=60)
    label: str = Field(min_length=1, max_length=200)
    type: IntakeTypeT = "text"
    required: bool = False
    choices: list[str] | None = Field(None, max_length=50)


class OfferBase(Schema):
    description: str = Field("", max_length=20000)
    session_type: SessionTypeT = "video"
    intake_fields: list[IntakeFieldIn] = Field(default_factory=list, max_length=30)
    thumbnail_url: str = Field("", max_length=500)
    capacity: JsonInt = Field(1, ge=1, le=500)
    pack_size: JsonInt = Field(1, ge=1, le=100)
    buffer_before_minutes: JsonInt = Field(0, ge=0, le=720)
    buffer_after_minutes: JsonInt = Field(0, ge=0, le=720)
    min_notice_minutes: JsonInt = Field(120, ge=0, le=60 * 24 * 60)
    horizon_days: JsonInt = Field(60, ge=1, le=730)
    max_sessions_per_day: JsonInt | None = Field(None, ge=1, le=96)
    slot_step_minutes: JsonInt | None = Field(None, ge=MIN_SLOT_STEP_MINUTES, le=1440)
    free_cancellation_hours: JsonInt = Field(24, ge=0, le=24 * 60)
    access_policy: dict[str, Any] = Field(default_factory=dict)
    money_policy: dict[str, Any] = Field(default_factory=dict)


class OfferIn(OfferBase):
    title: str = Field(min_length=1, max_length=160)
    price_minor: JsonInt = Field(ge=0, le=10**12, description="Price in minor units (cents).")
    currency: str = Field(min_length=3, max_length=3, pattern="^[A-Z]{3}$")
    duration_minutes: JsonInt = Field(ge=1, le=1440)
    delivery: DeliveryT


class OfferPatch(Schema):
    title: str | None = Field(None, min_length=1, max_length=160)
    description: str | None = Field(None, max_length=20000)
    price_minor: JsonInt | None = Field(None, ge=0, le=10**12)
    currency: str | None = Field(None, min_length=3, max_length=3, pattern="^[A-Z]{3}$")
    duration_minutes: JsonInt | None = Field(None, ge=1, le=1440)
    session_type: SessionTypeT | None = None
    delivery: DeliveryT | None = None
    intake_fields: list[IntakeFieldIn] | None = Field(None, max_length=30)
    thumbnail_url: str | None = Field(None, max_length=500)
    capacity: JsonInt | None = Field(None, ge=1, le=500)
    pack_size: JsonInt | None = Field(None, ge=1, le=100)
    buffer_before_minutes: JsonInt | None = Field(None, ge=0, le=720)
    buffer_after_minutes: JsonInt | None = Field(None, ge=0, le=720)
    min_notice_minutes: JsonInt | None = Field(None, ge=0, le=60 * 24 * 60)
    horizon_days: JsonInt | None = Field(None, ge=1, le=730)
    max_sessions_per_day: JsonInt | None = Field(None, ge=1, le=96)
    slot_step_minutes: JsonInt | None = Field(None, ge=MIN_SLOT_STEP_MINUTES, le=1440)
    free_cancellation_hours: JsonInt | None = Field(None, ge=0, le=24 * 60)
    access_policy: dict[str, Any] | None = None
    money_policy: dict[str, Any] | None = None


class CoachBrief(Schema):
    id: int
    display_name: str


class OfferOut(Schema):
    id: int
    coach: CoachBrief
    title: str
    description: str
    price_minor: int
    currency: str
    duration_minutes: int
    session_type: str
    delivery: str
    intake_fields: list[dict[str, Any]]
    thumbnail_url: str
    capacity: int
    pack_size: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    min_notice_minutes: int
    horizon_days: int
    max_sessions_per_day: int | None
    slot_step_minutes: int | None
    free_cancellation_hours: int
    access_policy: dict[str, Any]
    money_policy: dict[str, Any]
    status: str
    published_at: datetime | None


class CoachOut(Schema):
    id: int
    display_name: str
    bio: str
    specialties: list[str]
    timezone: str
    seat_capacity: int
    rating_average: float | None
    rating_count: int


class CoachDetailOut(CoachOut):
    offers: list[OfferOut]


class ProfilePatch(Schema):
    display_name: str | None = Field(None, min_length=1, max_length=120)
    bio: str | None = Field(None, max_length=5000)
    specialties: list[str] | None = Field(None, max_length=20)
    timezone: str | None = Field(None, max_length=64)
    seat_capacity: JsonInt | None = Field(None, ge=0, le=10000)


_NULLABLE = frozenset({"max_sessions_per_day", "slot_step_minutes"})


def _no_nulls(data: dict[str, Any], nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    nulls = sorted(k for k, v in data.items() if v is None and k not in nullable)
    if nulls:
        raise InvalidInput(f"These fields cannot be null: {', '.join(nulls)}.",
                           details={"fields": nulls})
    return data


def _offer_changes(payload: Schema) -> dict[str, Any]:
    data = _no_nulls(payload.model_dump(exclude_unset=True), _NULLABLE)
    if "intake_fields" in data and data["intake_fields"] is not None:
        data["intake_fields"] = [{k: v for k, v in f.items() if v is not None}
                                 for f in data["intake_fields"]]
    return data


# --- coaches --------------------------------------------------------------------------

@router.get("/coaches", response=list[CoachOut], auth=None,
            summary="Browse approved coaches (by specialty, rating or price)")
def browse_coaches(request: HttpRequest, specialty: str | None = None,
                   order: Literal["rating", "price"] = "rating") -> list[CoachProfile]:
    return services.browse_coaches(specialty=specialty, order=order)


@router.get("/coaches/{coach_id}", response=CoachDetailOut, auth=None)
def get_coach(request: HttpRequest, coach_id: int) -> dict[str, Any]:
    coach = services.get_coach(coach_id)
    offers = services.visible_offers(optional_user(request)).filter(coach=coach)
    return {**CoachOut.from_orm(coach).model_dump(), "offers": list(offers)}


@router.get("/coach/profile", response=CoachOut, summary="My coach profile")
def my_profile(request: HttpRequest) -> CoachProfile:
    return services.coach_profile_of(current_user(request))


@router.patch("/coach/profile", response=CoachOut, summary="Update my coach profile")
def update_profile(request: HttpRequest, payload: ProfilePatch) -> CoachProfile:
    return services.update_coach_profile(current_user(request),
                                         _no_nulls(payload.model_dump(exclude_unset=True)))


@router.post("/coach-applications/{application_id}/approve", response=ApplicationOut,
             summary="Approve a coach application (admins)")
def approve(request: HttpRequest, application_id: int, payload: ReviewIn) -> CoachApplication:
    return services.approve_application(current_user(request), application_id, note=payload.note)


@router.post("/coach-applications/{application_id}/reject", response=ApplicationOut,
             summary="Reject a coach application (admins)")
def reject(request: HttpRequest, application_id: int, payload: ReviewIn) -> CoachApplication:
    return reject_application(current_user(request), application_id, note=payload.note)


# --- offers ---------------------------------------------------------------------------

@router.get("/offers", response=list[OfferOut], auth=None,
            summary="Offers you may see: published ones, plus your own as a coach")
def list_offers(request: HttpRequest, coach_id: int | None = None,
                status: Literal["draft", "published", "archived"] | None = None) -> list[Offer]:
    qs = services.visible_offers(optional_user(request))
    if coach_id is not None:
        if not 1 <= coach_id < 2**63:
            return []  # no such coach (and past a database integer, it would not compare)
        qs = qs.filter(coach_id=coach_id)
    if status is not None:
        qs = qs.filter(status=status)
    return list(qs.order_by("pk"))


@router.post("/offers", response={201: OfferOut}, summary="Create a draft offer (coaches)")
def create_offer(request: HttpRequest, payload: OfferIn) -> Status[Any]:
    return Status(201, services.create_offer(current_user(request), _offer_changes(payload)))


@router.get("/offers/{offer_id}", response=OfferOut, auth=None)
def get_offer(request: HttpRequest, offer_id: int) -> Offer:
    return services.get_offer(optional_user(request), offer_id)


@router.patch("/offers/{offer_id}", response=OfferOut, summary="Change an offer (its coach)")
def update_offer(request: HttpRequest, offer_id: int, payload: OfferPatch) -> Offer:
    return services.update_offer(current_user(request), offer_id, _offer_changes(payload))


@router.post("/offers/{offer_id}/publish", response=OfferOut)
def publish_offer(request: HttpRequest, offer_id: int) -> Offer:
    return services.set_offer_status(current_user(request), offer_id, "published")


@router.post("/offers/{offer_id}/archive", response=OfferOut)
def archive_offer(request: HttpRequest, offer_id: int) -> Offer:
    return services.set_offer_status(current_user(request), offer_id, "archived")
