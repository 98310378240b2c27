"""webhooks.py, pure: signatures against vectors computed here with hmac, the timestamp
window, garbage in, and the dedupe key."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coachgate.integrations.zoom import webhooks

SECRET = "s3cr3t-token"
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
BODY = b'{"event":"meeting.started","payload":{"object":{"uuid":"abc=="}}}'


def expected(secret: str, ts: str, body: bytes) -> str:
    message = f"v0:{ts}:{body.decode()}".encode()
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def test_sign_matches_zooms_recipe() -> None:
    assert webhooks.sign(SECRET, TS, BODY) == expected(SECRET, TS, BODY)
    # A known vector, fixed here so a change of recipe cannot pass unnoticed.
    vector = hmac.new(b"k", b"v0:1:{}", hashlib.sha256).hexdigest()
    assert webhooks.sign("k", "1", b"{}") == "v0=" + vector


def test_verify_accepts_a_good_delivery() -> None:
    sig = expected(SECRET, TS, BODY)
    assert webhooks.verify(SECRET, sig, TS, BODY, now=NOW)
    assert webhooks.verify(SECRET, sig, TS, bytearray(BODY), now=NOW)


@pytest.mark.parametrize("change", ["body", "secret", "timestamp", "signature-case",
                                    "prefix"])
def test_verify_refuses_tampering(change: str) -> None:
    sig = expected(SECRET, TS, BODY)
    body, secret, ts = BODY, SECRET, TS
    if change == "body":
        body = BODY.replace(b"abc", b"abd")
    elif change == "secret":
        secret = SECRET + "x"
    elif change == "timestamp":
        ts = str(int(TS) + 1)  # inside the window, but the signature covers it
    elif change == "signature-case":
        sig = sig.upper()
    else:
        sig = sig.removeprefix("v0=")
    assert not webhooks.verify(secret, sig, ts, body, now=NOW)


@pytest.mark.parametrize("offset_s", [301, -301, 86400, -86400])
def test_verify_refuses_stale_and_future_timestamps(offset_s: int) -> None:
    ts = str(int(NOW.timestamp()) + offset_s)
    sig = expected(SECRET, ts, BODY)  # correctly signed, but out of the window
    assert not webhooks.verify(SECRET, sig, ts, BODY, now=NOW)


@pytest.mark.parametrize("offset_s", [300, -300, 0])
def test_verify_accepts_the_window_edges(offset_s: int) -> None:
    ts = str(int(NOW.timestamp()) + offset_s)
    assert webhooks.verify(SECRET, expected(SECRET, ts, BODY), ts, BODY, now=NOW)


def test_tolerance_is_configurable() -> None:
    ts = str(int(NOW.timestamp()) - 60)
    sig = expected(SECRET, ts, BODY)
    assert webhooks.verify(SECRET, sig, ts, BODY, now=NOW, tolerance_s=60)
    assert not webhooks.verify(SECRET, sig, ts, BODY, now=NOW, tolerance_s=59)


@pytest.mark.parametrize(("signature", "timestamp", "body"), [
    (None, TS, BODY), ("", TS, BODY), (expected(SECRET, TS, BODY), None, BODY),
    (expected(SECRET, TS, BODY), "", BODY), (expected(SECRET, TS, BODY), "12a", BODY),
    (expected(SECRET, TS, BODY), " " + TS, BODY), (expected(SECRET, TS, BODY), "-1", BODY),
    (expected(SECRET, TS, BODY), "1" * 400, BODY), (expected(SECRET, TS, BODY), "١٢٣", BODY),
    (expected(SECRET, TS, BODY), TS, None), (expected(SECRET, TS, BODY), TS, BODY.decode()),
    ("v0=é", TS, BODY), (123, TS, BODY), (expected(SECRET, TS, BODY), 1773154800, BODY),
])
def test_verify_never_raises_on_garbage(signature: Any, timestamp: Any, body: Any) -> None:
    assert webhooks.verify(SECRET, signature, timestamp, body, now=NOW) is False


def test_verify_refuses_an_empty_secret() -> None:
    assert not webhooks.verify("", expected("", TS, BODY), TS, BODY, now=NOW)


def test_verify_wants_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        webhooks.verify(SECRET, expected(SECRET, TS, BODY), TS, BODY,
                        now=NOW.replace(tzinfo=None))


def test_verify_headers_reads_either_case() -> None:
    sig = expected(SECRET, TS, BODY)
    assert webhooks.verify_headers(SECRET, {"X-Zm-Signature": sig,
                                            "X-Zm-Request-Timestamp": TS}, BODY, now=NOW)
    assert webhooks.verify_headers(SECRET, {"x-zm-signature": sig,
                                            "x-zm-request-timestamp": TS}, BODY, now=NOW)
    assert not webhooks.verify_headers(SECRET, {"x-zm-signature": sig}, BODY, now=NOW)
    assert not webhooks.verify_headers(SECRET, {}, BODY, now=NOW)
    garbage: Any = None
    assert not webhooks.verify_headers(SECRET, garbage, BODY, now=NOW)


def test_url_validation_answer() -> None:
    answer = webhooks.url_validation_answer(SECRET, "qgg8vlvZRS6UYooatFL8Aw")
    digest = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert answer == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": digest}


# --- natural_key ------------------------------------------------------------------------


def joined(*, uuid: str = "m-uuid==", join_time: str = "2026-03-10T15:01:00Z",
           event_ts: int = 1773154860000, **participant: Any) -> dict[str, Any]:
    person = {"user_id": "16778240", "user_name": "Ann", "id": "",
              "participant_uuid": "p-1", "join_time": join_time, "email": "ann@example.com",
              **participant}
    return {"event": "meeting.participant_joined", "event_ts": event_ts,
            "payload": {"account_id": "acc", "object": {
                "id": "81234567890", "uuid": uuid, "host_id": "h", "topic": "t", "type": 2,
                "start_time": "2026-03-10T15:00:00Z", "participant": person}}}


def test_redelivery_has_the_same_key_and_a_duplicate_with_a_new_event_ts_too() -> None:
    first = webhooks.natural_key(joined())
    assert first is not None
    assert webhooks.natural_key(joined()) == first
    assert webhooks.natural_key(joined(event_ts=1773154861234)) == first  # Zoom's double
    assert "meeting.participant_joined" in first and "m-uuid==" in first


def test_keys_differ_by_person_instance_time_and_event() -> None:
    base = webhooks.natural_key(joined())
    others = {
        webhooks.natural_key(joined(participant_uuid="p-2")),
        webhooks.natural_key(joined(uuid="other-instance==")),
        webhooks.natural_key(joined(join_time="2026-03-10T15:20:00Z")),  # a rejoin
    }
    left = joined()
    left["event"] = "meeting.participant_left"
    left["payload"]["object"]["participant"]["leave_time"] = "2026-03-10T15:30:00Z"
    others.add(webhooks.natural_key(left))
    assert base not in others and None not in others and len(others) == 4


def test_participant_identity_falls_back_to_ids_then_email() -> None:
    no_uuid = joined(participant_uuid=None)
    assert "user_id=16778240" in (webhooks.natural_key(no_uuid) or "")
    only_email = joined(participant_uuid="", user_id="", id="")
    assert "email=ann@example.com" in (webhooks.natural_key(only_email) or "")
    nobody = joined(participant_uuid="", user_id="", id="", email="")
    assert webhooks.natural_key(nobody) is None  # two strangers must not share a key


def test_meeting_started_and_ended_use_their_own_times() -> None:
    obj = {"id": "81234567890", "uuid": "m-uuid==", "start_time": "2026-03-10T15:00:00Z"}
    started = {"event": "meeting.started", "event_ts": 1, "payload": {"object": dict(obj)}}
    ended = {"event": "meeting.ended", "event_ts": 2,
             "payload": {"object": {**obj, "end_time": "2026-03-10T15:40:00Z"}}}
    s, e = webhooks.natural_key(started), webhooks.natural_key(ended)
    assert s is not None and s.endswith("at=2026-03-10T15:00:00Z")
    assert e is not None and e.endswith("at=2026-03-10T15:40:00Z")
    started["event_ts"] = 99
    assert webhooks.natural_key(started) == s


def test_other_events_use_event_ts() -> None:
    updated = {"event": "meeting.updated", "event_ts": 1773154860000,
               "payload": {"object": {"id": 81234567890, "topic": "new"}}}
    key = webhooks.natural_key(updated)
    assert key == "meeting.updated|meeting=81234567890|at=1773154860000"
    updated["event_ts"] = 1773154860001
    assert webhooks.natural_key(updated) != key


def test_app_deauthorized_is_keyed_by_user_and_time() -> None:
    event = {"event": "app_deauthorized", "event_ts": 5, "payload": {
        "account_id": "acc", "user_id": "u-1", "client_id": "c",
        "deauthorization_time": "2026-03-10T15:00:00.000Z"}}
    assert webhooks.natural_key(event) == (
        "app_deauthorized|user=u-1|at=2026-03-10T15:00:00.000Z")


@pytest.mark.parametrize("event", [
    None, "meeting.started", [], {}, {"event": ""}, {"event": 5},
    {"event": "endpoint.url_validation", "payload": {"plainToken": "x"}, "event_ts": 1},
    {"event": "meeting.started", "payload": "garbage"},
    {"event": "meeting.started", "payload": {"object": {"uuid": "u"}}},  # no time at all
    {"event": "meeting.started", "payload": {"object": {"uuid": {"nested": 1}}}},
])
def test_unkeyable_events_give_none(event: Any) -> None:
    assert webhooks.natural_key(event) is None


def test_bools_are_not_ids() -> None:
    event = joined(participant_uuid=True, user_id=False, id=None)
    assert "email=ann@example.com" in (webhooks.natural_key(event) or "")


def test_window_uses_now_not_the_wall_clock() -> None:
    old = NOW - timedelta(days=400)
    ts = str(int(old.timestamp()))
    assert webhooks.verify(SECRET, expected(SECRET, ts, BODY), ts, BODY, now=old)
