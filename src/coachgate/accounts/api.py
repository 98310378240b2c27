"""Routes for the caller's account, API tokens and coach applications. Thin: services decide."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from . import services
from .auth import API_AUTH, current_user
from .discord_api import router as discord_router
from .models import CoachApplication, User

router = Router(tags=["accounts"], auth=API_AUTH)


class MeOut(Schema):
    id: int
    email: str
    role: str
    display_name: str
    timezone: str


class MeIn(Schema):
    display_name: str | None = Field(None, max_length=120)
    timezone: str | None = Field(None, max_length=64)


class TokenIn(Schema):
    name: str = Field("api", min_length=1, max_length=80)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="Shown once. Send it as 'Authorization: Bearer <token>'.")


class ApplicationIn(Schema):
    display_name: str = Field(min_length=1, max_length=120)
    bio: str = Field("", max_length=5000)
    specialties: list[str] = Field(default_factory=list, max_length=20)
    timezone: str = Field(max_length=64)
    motivation: str = Field("", max_length=5000)


class ApplicationOut(Schema):
    id: int
    user_id: int
    display_name: str
    bio: str
    specialties: list[str]
    timezone: str
    motivation: str
    status: str
    submitted_at: datetime
    reviewed_at: datetime | None
    decision_note: str


class ReviewIn(Schema):
    note: str = Field("", max_length=2000)


def _me(user: User) -> MeOut:
    return MeOut(id=user.pk, email=user.email, role=user.role, display_name=user.display_name,
                 timezone=user.timezone)


@router.get("/me", response=MeOut, summary="Who am I")
def me(request: HttpRequest) -> MeOut:
    return _me(current_user(request))


@router.patch("/me", response=MeOut, summary="Update my name or time zone")
def update_me(request: HttpRequest, payload: MeIn) -> MeOut:
    user = current_user(request)
    if payload.timezone is not None:
        user.timezone = services.validate_timezone(payload.timezone)
    if payload.display_name is not None:
        user.display_name = payload.display_name
    user.save(update_fields=["timezone", "display_name"])
    return _me(user)


@router.get("/me/tokens", response=list[TokenOut], summary="My API tokens")
def list_tokens(request: HttpRequest) -> list[Any]:
    return list(current_user(request).api_tokens.order_by("-created_at"))


@router.post("/me/tokens", response={201: IssuedTokenOut}, summary="Create an API token")
def create_token(request: HttpRequest, payload: TokenIn) -> Status[Any]:
    issued = services.issue_token(current_user(request), payload.name)
    out = IssuedTokenOut.model_validate(TokenOut.from_orm(issued.token).model_dump()
                                        | {"token": issued.raw})
    return Status(201, out)


@router.delete("/me/tokens/{token_id}", response={204: None}, summary="Revoke an API token")
def revoke_token(request: HttpRequest, token_id: int) -> Status[Any]:
    services.revoke_token(current_user(request), token_id)
    return Status(204, None)


@router.post("/coach-applications", response={201: ApplicationOut},
             summary="Apply to become a coach")
def apply(request: HttpRequest, payload: ApplicationIn) -> Status[Any]:
    app = services.apply_as_coach(current_user(request), **payload.model_dump())
    return Status(201, app)


@router.get("/coach-applications", response=list[ApplicationOut],
            summary="Coach applications (admins: all; others: their own)")
def list_applications(request: HttpRequest) -> list[CoachApplication]:
    return services.visible_applications(current_user(request))


@router.get("/coach-applications/{application_id}", response=ApplicationOut)
def get_application(request: HttpRequest, application_id: int) -> CoachApplication:
    return services.get_application(current_user(request), application_id)


# The caller's Discord link and the admin's guild configuration (accounts/discord_api.py).
router.add_router("", discord_router)
