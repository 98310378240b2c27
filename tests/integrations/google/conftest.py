"""Fixtures for the Google client and emulator tests: no database, no mocks — the real
clients talk HTTP to a real emulator on 127.0.0.1, whose clock the tests set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from coachgate.integrations.google.client import (
    DEFAULT_SCOPES,
    CallRecord,
    GoogleOAuth,
    MeetClient,
    TokenSet,
)
from coachgate.integrations.google.emulator import GoogleEmulator

CLIENT_ID = "coachgate-test.apps.googleusercontent.com"
CLIENT_SECRET = "test-secret-not-real"
REDIRECT_URI = "http://127.0.0.1:8000/accounts/google/callback/"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class World:
    emu: GoogleEmulator
    oauth: GoogleOAuth
    coach: str  # sub
    records: list[CallRecord]
    clients: list[MeetClient] = field(default_factory=list)

    def consent(self, scopes: tuple[str, ...] = DEFAULT_SCOPES, *, offline: bool = True,
                state: str = "st-1", prompt_consent: bool = True) -> dict[str, list[str]]:
        """Follow the consent URL as a browser would (one GET, no redirect followed) and
        return the redirect's query."""
        url = self.oauth.authorize_url(REDIRECT_URI, state, scopes)
        if not offline or not prompt_consent:
            parts = urlsplit(url)
            query = {k: v for k, v in parse_qs(parts.query).items()
                     if (offline or k != "access_type") and (prompt_consent or k != "prompt")}
            url = parts._replace(query=urlencode({k: v[0] for k, v in query.items()})
                                 ).geturl()
        answer = httpx.get(url, follow_redirects=False)
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT_URI)
        return parse_qs(urlsplit(location).query)

    def connect(self, scopes: tuple[str, ...] = DEFAULT_SCOPES, **kwargs: bool) -> TokenSet:
        code = self.consent(scopes, **kwargs)["code"][0]
        return self.oauth.exchange_code(code, REDIRECT_URI, now=self.emu.now)

    def meet(self, tokens: TokenSet, **kwargs: int) -> MeetClient:
        """A MeetClient for the tokens, closed when the test ends."""
        client = MeetClient(tokens.access_token, api_base=self.emu.api_base,
                            on_call=self.records.append, clock=lambda: self.emu.now, **kwargs)
        self.clients.append(client)
        return client


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        emulator.set_time(T0)
        yield emulator


@pytest.fixture
def world(emu: GoogleEmulator) -> Iterator[World]:
    emu.register_client(CLIENT_ID, CLIENT_SECRET, redirect_uris=[REDIRECT_URI])
    coach = emu.create_user("coach@example.com", name="Casey Coach")
    emu.authorize_as(coach)
    records: list[CallRecord] = []
    with GoogleOAuth(CLIENT_ID, CLIENT_SECRET, auth_base=emu.auth_base,
                     token_url=emu.token_url, revoke_url=emu.revoke_url,
                     userinfo_url=emu.userinfo_url, on_call=records.append,
                     clock=lambda: emu.now) as oauth:
        world = World(emu, oauth, coach, records)
        yield world
        for client in world.clients:
            client.close()
