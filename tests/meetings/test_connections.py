"""meetings.connections: Jitsi servers checked as untrusted input, OAuth grants stored
encrypted, removal refused while something uses the connection, and token refresh that is
safe when several workers refresh one rotating grant at once."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from coachgate.kit.crypto import decrypt
from coachgate.kit.errors import (
    CoachgateError,
    Forbidden,
    InvalidInput,
    NotFound,
    VideoConnectionInUse,
    VideoConnectionInvalid,
)
from coachgate.meetings import connections as conns
from coachgate.meetings.models import ConnectionState, Provider, VideoConnection
from tests.factories import coach_profile, make_admin, make_coach, make_offer, make_student

NOW = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
ZOOM_SCOPES = frozenset({"meeting:write:meeting", "meeting:update:meeting",
                         "meeting:delete:meeting", "meeting:read:meeting", "user:read:user"})


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None
    expires_at: datetime


class RotatingGrant:
    """A provider's token endpoint that rotates the refresh token as Zoom does: each
    refresh token works once; reusing one answers invalid_grant. (The provider side only;
    the real Zoom emulator test is in tests/meetings/test_zoom_*.)"""

    def __init__(self, first: str, *, delay: threading.Event | None = None) -> None:
        self.live = first
        self.n = 0
        self.calls = 0
        self.lock = threading.Lock()
        self.delay = delay

    def __call__(self, refresh_token: str) -> Tokens:
        with self.lock:
            self.calls += 1
            if refresh_token != self.live:
                raise conns.InvalidGrantError()
            self.n += 1
            self.live = f"refresh-{self.n}"
            answer = Tokens(f"access-{self.n}", self.live, NOW + timedelta(hours=1))
        if self.delay is not None:
            self.delay.wait(2)  # the answer travels back slowly
        return answer


def _zoom(coach_user, *, expires_at: datetime = NOW - timedelta(minutes=1),
          refresh: str = "refresh-0") -> VideoConnection:
    return conns.store_grant(
        coach_profile(coach_user).pk, Provider.ZOOM,
        tokens=Tokens("access-0", refresh, expires_at), scopes=ZOOM_SCOPES,
        needed=ZOOM_SCOPES, account_id="zu1", account_email="c@zoom.test", plan="licensed",
        now=NOW)


# --- Jitsi --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_coach_connects_a_jitsi_server_with_its_secret_encrypted() -> None:
    coach = make_coach()
    conn = conns.connect_jitsi(coach, base_url=" https://meet.example.org/ ", app_id="cg",
                               app_secret="s" * 32, now=NOW)
    assert (conn.provider, conn.base_url, conn.app_id, conn.state) == (
        "jitsi", "https://meet.example.org", "cg", "active")
    stored = VideoConnection.objects.get(pk=conn.pk)
    assert "s" * 32 not in stored.app_secret and decrypt(stored.app_secret) == "s" * 32
    assert "s" * 32 not in repr(stored) + str(stored)
    # Connecting again changes the one row.
    conns.connect_jitsi(coach, base_url="https://jitsi.example.net", now=NOW)
    assert VideoConnection.objects.filter(coach__user=coach).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("url", [
    "", "meet.example.org", "ftp://meet.example.org", "http://meet.example.org",
    "https://user:pw@meet.example.org", "https://meet.example.org/?x=1",
    "https://meet.example.org/#f", "javascript:alert(1)", "https://", "https://exa mple.org",
    "https://" + "a" * 300 + ".org", "https://[::1",
])
def test_a_bad_jitsi_address_is_refused_and_nothing_is_stored(url: str) -> None:
    coach = make_coach()
    with pytest.raises(InvalidInput) as exc:
        conns.connect_jitsi(coach, base_url=url, now=NOW)
    assert exc.value.details == {"field": "base_url"}
    assert not VideoConnection.objects.exists()


@pytest.mark.django_db
def test_http_is_allowed_for_this_machine_only() -> None:
    coach = make_coach()
    assert conns.connect_jitsi(coach, base_url="http://127.0.0.1:8443",
                               now=NOW).base_url == "http://127.0.0.1:8443"
    assert conns.connect_jitsi(coach, base_url="http://localhost",
                               now=NOW).base_url == "http://localhost"


@pytest.mark.django_db
@pytest.mark.parametrize(("app_id", "secret", "field"), [
    ("cg", "", "app_secret"), ("", "s" * 32, "app_id"), ("has space", "s" * 32, "app_id"),
    ("cg", "short", "app_secret"), ("cg", "s" * 513, "app_secret"),
])
def test_jitsi_app_credentials_come_in_pairs_within_limits(app_id: str, secret: str,
                                                           field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        conns.connect_jitsi(make_coach(), base_url="https://meet.example.org", app_id=app_id,
                            app_secret=secret, now=NOW)
    assert exc.value.details["field"] == field


@pytest.mark.django_db
def test_only_a_coach_connects() -> None:
    with pytest.raises(Forbidden):
        conns.connect_jitsi(make_student(), base_url="https://meet.example.org", now=NOW)


# --- grants -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_grant_is_stored_encrypted_with_the_scopes_it_lacks() -> None:
    coach = make_coach()
    conn = conns.store_grant(
        coach_profile(coach).pk, Provider.ZOOM, tokens=Tokens("acc", "ref", NOW),
        scopes=ZOOM_SCOPES - {"meeting:delete:meeting"}, needed=ZOOM_SCOPES,
        account_id="zu1", account_email="c@zoom.test", now=NOW)
    assert conn.missing_scopes == "meeting:delete:meeting"
    assert "acc" not in conn.access_token and decrypt(conn.access_token) == "acc"
    assert decrypt(conn.refresh_token) == "ref"
    assert conn.version == 1


# --- removal ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_connection_used_by_a_published_offer_cannot_be_removed() -> None:
    coach = make_coach(admin=make_admin())
    _zoom(coach)
    offer = make_offer(coach, delivery="zoom")
    with pytest.raises(VideoConnectionInUse) as exc:
        conns.remove_connection(coach, "zoom", now=NOW)
    assert exc.value.details == {"published_offers": 1, "scheduled_sessions": 0}
    assert VideoConnection.objects.filter(provider="zoom").exists()
    from coachgate.catalog import services as catalog

    catalog.set_offer_status(coach, offer.pk, "archived")
    conns.remove_connection(coach, "zoom", now=NOW)
    assert not VideoConnection.objects.filter(provider="zoom").exists()
    with pytest.raises(NotFound):
        conns.remove_connection(coach, "zoom", now=NOW)
    with pytest.raises(InvalidInput):
        conns.remove_connection(coach, "skype", now=NOW)


# --- refresh ------------------------------------------------------------------------------


class _Fast(conns.Waiting):
    def __init__(self) -> None:
        super().__init__(sleep=lambda s: None, limit_s=5.0)


@pytest.mark.django_db
def test_a_token_that_is_still_good_is_used_without_a_refresh() -> None:
    conn = _zoom(make_coach(), expires_at=NOW + timedelta(minutes=30))
    grant = RotatingGrant("refresh-0")
    assert conns.access_token(conn.pk, grant, now=NOW) == "access-0"
    assert grant.calls == 0


@pytest.mark.django_db
def test_an_expired_token_is_refreshed_and_the_rotated_refresh_token_kept() -> None:
    conn = _zoom(make_coach())
    grant = RotatingGrant("refresh-0")
    assert conns.access_token(conn.pk, grant, now=NOW) == "access-1"
    conn.refresh_from_db()
    assert decrypt(conn.refresh_token) == "refresh-1"
    assert (conn.version, conn.refresh_lease_until, conn.state) == (2, None, "active")
    # The next expiry refreshes with the rotated token, which works.
    assert conns.access_token(conn.pk, grant, now=NOW + timedelta(hours=2)) == "access-2"


@pytest.mark.django_db
def test_a_refused_grant_marks_the_connection_invalid_once() -> None:
    conn = _zoom(make_coach(), refresh="revoked")
    grant = RotatingGrant("refresh-0")
    with pytest.raises(VideoConnectionInvalid):
        conns.access_token(conn.pk, grant, now=NOW)
    conn.refresh_from_db()
    assert (conn.state, conn.invalid_since) == (ConnectionState.INVALID, NOW)
    assert "invalid_grant" in conn.last_error
    with pytest.raises(VideoConnectionInvalid):  # and no further provider call
        conns.access_token(conn.pk, grant, now=NOW)
    assert grant.calls == 1


@pytest.mark.django_db
def test_invalid_grant_after_a_sibling_rotated_uses_the_siblings_tokens() -> None:
    conn = _zoom(make_coach())

    def sibling_won(refresh_token: str) -> Tokens:
        # While we were asking, a sibling (whose lease had run out) stored its refresh.
        VideoConnection.objects.filter(pk=conn.pk).update(
            access_token=conns.encrypt("sibling-access"), version=conn.version + 1,
            token_expires_at=NOW + timedelta(hours=1))
        raise conns.InvalidGrantError()

    assert conns.access_token(conn.pk, sibling_won, now=NOW) == "sibling-access"
    conn.refresh_from_db()
    assert conn.state == ConnectionState.ACTIVE


@pytest.mark.django_db
def test_a_provider_failure_frees_the_lease_for_the_next_try() -> None:
    conn = _zoom(make_coach())

    def down(refresh_token: str) -> Tokens:
        raise TimeoutError("provider timed out")

    with pytest.raises(TimeoutError):
        conns.access_token(conn.pk, down, now=NOW)
    conn.refresh_from_db()
    assert (conn.refresh_lease_until, conn.state) == (None, "active")
    assert conns.access_token(conn.pk, RotatingGrant("refresh-0"), now=NOW) == "access-1"


@pytest.mark.django_db(transaction=True)
def test_workers_refreshing_one_rotating_grant_at_once_keep_it_alive() -> None:
    conn = _zoom(make_coach())
    slow = threading.Event()
    grant = RotatingGrant("refresh-0", delay=slow)
    workers = 6
    barrier = threading.Barrier(workers)
    got: Counter[str] = Counter()
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait()
            try:
                token = conns.access_token(conn.pk, grant, now=NOW,
                                           waiting=conns.Waiting(step_s=0.01, limit_s=10))
            except CoachgateError as exc:
                token = exc.code
            with lock:
                got[token] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    threading.Timer(0.3, slow.set).start()  # the one refresh answers after the others wait
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert got == Counter({"access-1": workers})  # every worker got the one new token
    assert grant.calls == 1  # one refresh, so no invalid_grant from a reused token
    conn.refresh_from_db()
    assert (conn.state, decrypt(conn.refresh_token), conn.version) == (
        "active", "refresh-1", 2)
