"""The real GoogleOAuth against the real GoogleEmulator (HTTP on 127.0.0.1, no mocks):
consent, code exchange, refresh, revocation and userinfo, on the emulator's clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from coachgate.integrations.google.client import (
    EMAIL,
    MEET_SPACE_CREATED,
    OPENID,
    USERINFO_EMAIL,
    ActionRequired,
    GoogleOAuth,
    InvalidGrant,
    RetryLater,
    Unauthenticated,
)

from .conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, T0, World


def test_authorize_url_asks_for_offline_access_and_consent(world: World) -> None:
    url = world.oauth.authorize_url(REDIRECT_URI, "state-42", (OPENID, EMAIL, MEET_SPACE_CREATED),
                                    login_hint="coach@example.com")
    parts = urlsplit(url)
    assert parts.path == "/o/oauth2/v2/auth"
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q == {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
                 "scope": f"openid email {MEET_SPACE_CREATED}", "state": "state-42",
                 "access_type": "offline", "prompt": "consent",
                 "include_granted_scopes": "true", "login_hint": "coach@example.com"}
    with GoogleOAuth("id", "secret") as google:
        assert google.authorize_url("https://x/cb", "s").startswith(
            "https://accounts.google.com/o/oauth2/v2/auth?client_id=id&")


def test_offline_consent_gives_a_refresh_token_and_the_user(world: World) -> None:
    redirect = world.consent(state="st-7")
    assert redirect["state"] == ["st-7"]
    tokens = world.oauth.exchange_code(redirect["code"][0], REDIRECT_URI, now=world.emu.now)
    assert tokens.access_token.startswith("ya29.") and tokens.refresh_token
    assert tokens.expires_at == T0 + timedelta(seconds=3599)
    # "email" is granted under its full name, as Google does.
    assert tokens.scopes == {OPENID, USERINFO_EMAIL, MEET_SPACE_CREATED}
    assert tokens.has_scopes(MEET_SPACE_CREATED) and not tokens.expires_within(T0)
    assert tokens.expires_within(T0 + timedelta(seconds=3560))
    info = world.oauth.userinfo(tokens.access_token)
    assert info == {"sub": world.coach, "email": "coach@example.com", "email_verified": True}
    assert [(r.method, r.route, r.status) for r in world.records] == [
        ("POST", "/token", 200), ("GET", "/v1/userinfo", 200)]


def test_online_grant_has_no_refresh_token(world: World) -> None:
    tokens = world.connect(offline=False)
    assert tokens.refresh_token is None
    assert world.oauth.userinfo(tokens.access_token)["sub"] == world.coach


def test_a_code_is_good_once(world: World) -> None:
    code = world.consent()["code"][0]
    world.oauth.exchange_code(code, REDIRECT_URI, now=world.emu.now)
    with pytest.raises(InvalidGrant) as exc:
        world.oauth.exchange_code(code, REDIRECT_URI, now=world.emu.now)
    assert exc.value.status == 400 and exc.value.reason == "invalid_grant"
    assert exc.value.route == "/token" and code not in str(exc.value)


def test_a_stale_code_is_refused(world: World) -> None:
    code = world.consent()["code"][0]
    world.emu.advance(601)
    with pytest.raises(InvalidGrant):
        world.oauth.exchange_code(code, REDIRECT_URI, now=world.emu.now)


def test_refresh_keeps_the_old_refresh_token(world: World) -> None:
    tokens = world.connect()
    assert tokens.refresh_token is not None
    world.emu.advance(4000)  # past the access token's hour
    with pytest.raises(Unauthenticated) as exc:
        world.oauth.userinfo(tokens.access_token)
    assert exc.value.status == 401
    fresh = world.oauth.refresh(tokens.refresh_token, now=world.emu.now)
    assert fresh.refresh_token == tokens.refresh_token  # Google sent none: the old one kept
    assert fresh.access_token != tokens.access_token
    assert fresh.expires_at == T0 + timedelta(seconds=4000 + 3599)
    assert fresh.scopes == tokens.scopes
    assert world.oauth.userinfo(fresh.access_token)["sub"] == world.coach
    # The refresh token keeps working for the next refresh too.
    again = world.oauth.refresh(tokens.refresh_token, now=world.emu.now)
    assert again.access_token not in (fresh.access_token, tokens.access_token)


def test_a_revoked_grant_refreshes_to_invalid_grant(world: World) -> None:
    tokens = world.connect()
    assert tokens.refresh_token is not None
    world.emu.revoke_grant(world.coach)
    with pytest.raises(InvalidGrant) as exc:
        world.oauth.refresh(tokens.refresh_token, now=world.emu.now)
    assert isinstance(exc.value, ActionRequired) and not isinstance(exc.value, RetryLater)
    assert exc.value.message == "Token has been expired or revoked."
    with pytest.raises(Unauthenticated):  # the access token died with the grant
        world.oauth.userinfo(tokens.access_token)


def test_revoke_from_the_client_is_idempotent(world: World) -> None:
    tokens = world.connect()
    assert tokens.refresh_token is not None
    world.oauth.revoke(tokens.refresh_token)
    world.oauth.revoke(tokens.refresh_token)  # 400 invalid_token: already done
    assert world.records[-1].status == 400
    with pytest.raises(InvalidGrant):
        world.oauth.refresh(tokens.refresh_token, now=world.emu.now)


def test_a_second_connection_needs_prompt_consent_for_a_new_refresh_token(world: World) -> None:
    first = world.connect()
    without_prompt = world.connect(prompt_consent=False)
    assert without_prompt.refresh_token is None  # Google issues one only the first time
    with_prompt = world.connect()
    assert with_prompt.refresh_token not in (None, first.refresh_token)
    assert first.refresh_token is not None  # the first still works
    world.oauth.refresh(first.refresh_token, now=world.emu.now)
    assert world.emu.live_refresh_tokens(world.coach, CLIENT_ID) == 2


def test_unticked_meet_scope_is_missing_from_the_grant(world: World) -> None:
    world.emu.authorize_as(world.coach, withhold=[MEET_SPACE_CREATED])
    tokens = world.connect()
    assert tokens.scopes == {OPENID, USERINFO_EMAIL}
    assert not tokens.has_scopes(MEET_SPACE_CREATED)


def test_include_granted_scopes_keeps_earlier_grants(world: World) -> None:
    world.connect((MEET_SPACE_CREATED,))
    later = world.connect((OPENID, EMAIL))
    assert later.scopes == {OPENID, USERINFO_EMAIL, MEET_SPACE_CREATED}


def test_login_hint_picks_the_user(world: World) -> None:
    other = world.emu.create_user("student@example.com")
    url = world.oauth.authorize_url(REDIRECT_URI, "s", (OPENID, EMAIL),
                                    login_hint="student@example.com")
    location = httpx.get(url).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    tokens = world.oauth.exchange_code(code, REDIRECT_URI, now=world.emu.now)
    assert world.oauth.userinfo(tokens.access_token)["sub"] == other != world.coach


def test_the_user_can_cancel(world: World) -> None:
    world.emu.authorize_as(world.coach, deny=True)
    redirect = world.consent(state="st-9")
    assert redirect == {"state": ["st-9"], "error": ["access_denied"]}


def test_unknown_redirect_uri_is_an_error_page_not_a_redirect(world: World) -> None:
    url = world.oauth.authorize_url("https://evil.example/cb", "s")
    answer = httpx.get(url)
    assert answer.status_code == 400 and "redirect_uri_mismatch" in answer.text
    assert "location" not in answer.headers


def test_a_wrong_client_secret_is_action_required_not_invalid_grant(world: World) -> None:
    code = world.consent()["code"][0]
    with GoogleOAuth(CLIENT_ID, "wrong", token_url=world.emu.token_url) as bad, \
            pytest.raises(ActionRequired) as exc:
        bad.exchange_code(code, REDIRECT_URI, now=world.emu.now)
    assert not isinstance(exc.value, InvalidGrant)
    assert (exc.value.status, exc.value.reason) == (401, "invalid_client")


def test_token_endpoint_outage_is_retry_later(world: World) -> None:
    tokens = world.connect()
    assert tokens.refresh_token is not None
    world.emu.fail_next("POST", "/token", 503, retry_after=30)
    with pytest.raises(RetryLater) as exc:
        world.oauth.refresh(tokens.refresh_token, now=world.emu.now)
    assert exc.value.retry_at == world.emu.now + timedelta(seconds=30)
    assert exc.value.reason == "UNAVAILABLE"
    assert world.oauth.refresh(tokens.refresh_token, now=world.emu.now).refresh_token


def test_secrets_stay_out_of_reprs_and_errors(world: World) -> None:
    tokens = world.connect()
    assert tokens.refresh_token is not None
    assert tokens.access_token not in repr(tokens)
    assert tokens.refresh_token not in repr(tokens)
    assert "refresh_token=yes" in repr(tokens)
    assert "test-secret" not in repr(world.oauth)
    world.emu.revoke_grant(world.coach)
    with pytest.raises(InvalidGrant) as exc:
        world.oauth.refresh(tokens.refresh_token, now=world.emu.now)
    assert tokens.refresh_token not in str(exc.value) + repr(exc.value)
    with pytest.raises(ValueError, match="timezone-aware"):
        world.oauth.refresh("x", now=world.emu.now.replace(tzinfo=None))


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_openid_grants_carry_an_id_token_and_the_older_userinfo(world: World) -> None:
    """What django-allauth's Google provider reads: the token answer's id_token (not
    signature-checked in the code flow) or else ``/oauth2/v2/userinfo``."""
    code = world.consent((OPENID, EMAIL))["code"][0]
    answer = httpx.post(world.emu.token_url, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
    header, claims, signature = answer.json()["id_token"].split(".")
    assert json.loads(_b64decode(header)) == {"alg": "HS256", "typ": "JWT"}
    expected = hmac.new(CLIENT_SECRET.encode(), f"{header}.{claims}".encode(),
                        hashlib.sha256).digest()
    assert hmac.compare_digest(_b64decode(signature), expected)
    issued = int(T0.timestamp())
    assert json.loads(_b64decode(claims)) == {
        "iss": "https://accounts.google.com", "azp": CLIENT_ID, "aud": CLIENT_ID,
        "sub": world.coach, "iat": issued, "exp": issued + 3600,
        "email": "coach@example.com", "email_verified": True}
    v2 = httpx.get(world.emu.url + "/oauth2/v2/userinfo",
                   headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
    assert v2.json() == {"id": world.coach, "email": "coach@example.com",
                         "verified_email": True}
    # Without openid there is no id_token.
    other = world.emu.create_user("other@example.com")
    assert "id_token" not in world.emu.issue_tokens(other, CLIENT_ID, [MEET_SPACE_CREATED])
