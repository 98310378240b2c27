"""Fixtures for the Zoom client and emulator tests: no database, no mocks — the real
client talks HTTP to a real emulator on 127.0.0.1, and webhooks go over HTTP to a real
receiver that checks them with ``webhooks.verify``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from coachgate.integrations.localserver import LoopbackService, TrackedHandler, TrackingServer
from coachgate.integrations.zoom import webhooks
from coachgate.integrations.zoom.client import CallRecord, TokenSet, ZoomClient, ZoomOAuth
from coachgate.integrations.zoom.emulator import ZoomEmulator

CLIENT_ID = "zoom-test-client"
CLIENT_SECRET = "zoom-test-secret"
WEBHOOK_SECRET = "zoom-test-webhook-secret"
REDIRECT_URI = "https://coachgate.test/accounts/zoom/callback/"
#: The emulator's frozen clock: a Tuesday afternoon, UTC.
T0 = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    event: Any
    verified: bool


class Receiver(LoopbackService):
    """A webhook endpoint like the one coachgate serves: verifies each delivery against
    ``now()`` (the emulator's clock), answers ``endpoint.url_validation``, keeps the rest."""

    thread_name = "zoom-webhook-receiver"

    def __init__(self, secret: str, now: Any) -> None:
        self._port = 0
        self._stopping = threading.Event()
        self.secret = secret
        self.now = now
        self.received: list[Received] = []

    def _new_server(self) -> TrackingServer:
        server = _ReceiverServer(("127.0.0.1", 0), _ReceiverHandler)
        server.receiver = self
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/zoom/webhook"


class _ReceiverServer(TrackingServer):
    receiver: Receiver


class _ReceiverHandler(TrackedHandler):
    def do_POST(self) -> None:
        receiver = cast(_ReceiverServer, self.server).receiver
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        ok = webhooks.verify(receiver.secret, headers.get(webhooks.SIGNATURE_HEADER),
                             headers.get(webhooks.TIMESTAMP_HEADER), raw, now=receiver.now())
        event = json.loads(raw)
        receiver.received.append(Received(headers, raw, event, ok))
        status, answer = (200, {}) if ok else (401, {"error": "bad signature"})
        if ok and event.get("event") == webhooks.URL_VALIDATION:
            answer = webhooks.url_validation_answer(receiver.secret,
                                                    event["payload"]["plainToken"])
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class World:
    emu: ZoomEmulator
    oauth: ZoomOAuth
    coach: str
    tokens: TokenSet
    client: ZoomClient
    records: list[CallRecord] = field(default_factory=list)

    def client_for(self, tokens: TokenSet, **kwargs: Any) -> ZoomClient:
        return ZoomClient(tokens.access_token, api_base=self.emu.api_base, clock=self.emu.now,
                          timeout=2.0, **kwargs)

    def api(self) -> ZoomClient:
        """The client, after a refresh if the access token has expired on the emulator's
        clock (as coachgate does before a call); the rotated refresh token is kept."""
        if self.tokens.expires_within(60, now=self.emu.now()):
            self.tokens = self.oauth.refresh(self.tokens.refresh_token, now=self.emu.now())
            self.client.close()
            self.client = self.client_for(self.tokens, on_call=self.records.append)
        return self.client


def authorize(emu: ZoomEmulator, oauth: ZoomOAuth, user_id: str, state: str = "st-1") -> str:
    """The consent round trip over HTTP: the authorize URL redirects back with a code."""
    emu.authorize_as(user_id)
    answer = httpx.get(oauth.authorize_url(REDIRECT_URI, state), follow_redirects=False)
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    return query["code"][0]


@pytest.fixture
def emu() -> Iterator[ZoomEmulator]:
    with ZoomEmulator() as emulator:
        emulator.set_clock(T0)
        emulator.register_app(CLIENT_ID, CLIENT_SECRET, webhook_secret_token=WEBHOOK_SECRET)
        yield emulator


@pytest.fixture
def receiver(emu: ZoomEmulator) -> Iterator[Receiver]:
    with Receiver(WEBHOOK_SECRET, emu.now) as rec:
        emu.set_webhook_url(CLIENT_ID, rec.url)
        yield rec


@pytest.fixture
def world(emu: ZoomEmulator) -> Iterator[World]:
    coach = emu.create_user("coach@example.com", first_name="Coach")
    with ZoomOAuth(CLIENT_ID, CLIENT_SECRET, oauth_base=emu.oauth_base) as oauth:
        tokens = oauth.exchange_code(authorize(emu, oauth, coach), REDIRECT_URI, now=emu.now())
        records: list[CallRecord] = []
        with ZoomClient(tokens.access_token, api_base=emu.api_base, clock=emu.now,
                        timeout=2.0, on_call=records.append) as client:
            world = World(emu, oauth, coach, tokens, client, records)
            yield world
            world.client.close()
