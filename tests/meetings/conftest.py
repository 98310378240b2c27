"""Fixtures of the meetings tests: a Zoom emulator the settings point at, a coach connected
to it, a booked Zoom session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from coachgate.integrations.zoom.emulator import ZoomEmulator
from coachgate.kit import clock
from coachgate.meetings import connections as conns
from coachgate.meetings.models import Provider, VideoConnection
from coachgate.scheduling import services as scheduling
from tests.factories import coach_profile, make_admin, make_coach, make_offer, make_student

CLIENT_ID, CLIENT_SECRET, WEBHOOK = "cg-zoom", "cg-zoom-secret", "cg-zoom-webhook"


@pytest.fixture
def emu(settings) -> Iterator[ZoomEmulator]:
    with ZoomEmulator() as e:
        e.register_app(CLIENT_ID, CLIENT_SECRET, webhook_secret_token=WEBHOOK)
        settings.COACHGATE = {**settings.COACHGATE, "ZOOM_CLIENT_ID": CLIENT_ID,
                              "ZOOM_CLIENT_SECRET": CLIENT_SECRET,
                              "ZOOM_WEBHOOK_SECRET": WEBHOOK, "ZOOM_OAUTH_URL": e.oauth_base,
                              "ZOOM_API_URL": e.api_base}
        yield e


def connect_zoom(emu: ZoomEmulator, coach, *,
                 plan: str = "licensed") -> tuple[str, VideoConnection]:
    user_id = emu.create_user(f"{coach.email}", plan=plan)
    answer = emu.issue_tokens(user_id, CLIENT_ID)

    class Tokens:
        access_token = answer["access_token"]
        refresh_token = answer["refresh_token"]
        expires_at = clock.now() + timedelta(seconds=int(answer["expires_in"]))

    conn = conns.store_grant(coach_profile(coach).pk, Provider.ZOOM, tokens=Tokens(),
                             scopes=frozenset(answer["scope"].split()),
                             needed=conns.ZOOM_NEEDED, account_id=user_id,
                             account_email=coach.email, plan=plan, now=clock.now())
    return user_id, conn


def book(coach, offer, student, *, day: int = 2):
    now = clock.now()
    slot = scheduling.list_slots(student, offer, start=now + timedelta(days=day),
                                 end=now + timedelta(days=day + 7), now=now)[0]
    return scheduling.book_session(student, offer.pk, slot.start, now=now).session


@pytest.fixture
def booked(emu: ZoomEmulator):
    coach = make_coach(tz="UTC", admin=make_admin())
    user_id, conn = connect_zoom(emu, coach)
    offer = make_offer(coach, delivery="zoom", title="Zoom lesson")
    student = make_student()
    session = book(coach, offer, student)
    return coach, student, offer, session, user_id, conn
