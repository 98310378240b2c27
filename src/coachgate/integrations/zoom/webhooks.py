"""Zoom's webhooks, pure: no I/O, ``now`` always passed in.

Zoom signs each delivery with the app's *secret token*
(https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events): the header
``x-zm-signature`` is ``v0=`` + hex HMAC-SHA256(secret, ``v0:{timestamp}:{raw body}``),
where ``timestamp`` is the header ``x-zm-request-timestamp`` (seconds since the epoch).
When an endpoint is added or re-validated Zoom sends ``endpoint.url_validation`` with a
``plainToken`` and expects ``url_validation_answer`` back within 3 seconds.

Zoom sends no event id, and it redelivers (and sometimes sends a participant event
twice), so ``natural_key`` builds one from what the event is about and when it happened.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
URL_VALIDATION = "endpoint.url_validation"
#: How far (seconds) a delivery's timestamp may be from now; Zoom's guide suggests 5 min.
DEFAULT_TOLERANCE_S = 300

# A timestamp longer than this is garbage, not seconds (and int() of a huge digit string
# is slow).
_MAX_TIMESTAMP_DIGITS = 12


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``x-zm-signature`` Zoom sends for ``body`` at ``timestamp``."""
    return "v0=" + _hmac_hex(secret, b"v0:" + timestamp.encode() + b":" + body)


def verify(secret: str, signature: Any, timestamp: Any, body: Any, *, now: datetime,
           tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """Whether a delivery is Zoom's: the signature matches (compared in constant time)
    and ``timestamp`` is within ``tolerance_s`` of ``now`` either way (a replayed or
    forged-late delivery fails). Missing, non-string or non-numeric values give False,
    never an exception; only a naive ``now`` (a programming error) raises ValueError."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not secret or not isinstance(signature, str) or not isinstance(timestamp, str):
        return False
    if not isinstance(body, bytes | bytearray):
        return False
    if not timestamp.isascii() or not timestamp.isdigit() \
            or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return False
    if abs(now.timestamp() - int(timestamp)) > tolerance_s:
        return False
    expected = sign(secret, timestamp, bytes(body))
    if not signature.isascii():  # compare_digest refuses non-ASCII str
        return False
    return hmac.compare_digest(expected, signature)


def verify_headers(secret: str, headers: Mapping[str, str], body: Any, *, now: datetime,
                   tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """``verify`` with the signature and timestamp read from a delivery's headers (names
    in any case: a plain dict or Django's ``request.headers``)."""
    try:
        lowered = {str(k).lower(): v for k, v in headers.items()}
    except AttributeError:
        return False
    return verify(secret, lowered.get(SIGNATURE_HEADER), lowered.get(TIMESTAMP_HEADER), body,
                  now=now, tolerance_s=tolerance_s)


def url_validation_answer(secret: str, plain_token: str) -> dict[str, str]:
    """The JSON body answering ``endpoint.url_validation`` (with HTTP 200)."""
    return {"plainToken": plain_token,
            "encryptedToken": _hmac_hex(secret, plain_token.encode())}


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        text = str(value).strip()
        return text or None
    return None


def _participant_identity(participant: Mapping[str, Any]) -> str | None:
    """The most specific identity a participant event carries: Zoom's participant uuid
    (one per join), else its user ids, else the email."""
    for field in ("participant_uuid", "participant_user_id", "user_id", "id", "email"):
        value = _text(participant.get(field))
        if value is not None:
            return f"{field}={value}"
    return None


def natural_key(event: Any) -> str | None:
    """A dedupe key for a Zoom event (Zoom sends no event id), the same for every delivery
    of one occurrence: the event name, the meeting instance's uuid, for participant events
    who (``participant_uuid``, ``participant_user_id``, ``user_id``, ``id`` or ``email``,
    the first present) and when (``join_time``/``leave_time``), for the meeting's own
    ``meeting.started``/``meeting.ended`` its ``start_time``/``end_time``; other events
    (``meeting.updated``...) use ``event_ts``, when Zoom emitted them, which is also the
    stand-in when a time is missing. None when the event cannot be
    keyed (not a dict, no event name, nothing to identify it) or must not be stored
    (``endpoint.url_validation``)."""
    if not isinstance(event, Mapping):
        return None
    name = _text(event.get("event"))
    if name is None or name == URL_VALIDATION:
        return None
    payload = event.get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    obj = payload.get("object")
    obj = obj if isinstance(obj, Mapping) else {}
    parts = [name]
    subject = _text(obj.get("uuid")) or _text(obj.get("id"))
    if subject is not None:
        parts.append(f"meeting={subject}")
    when: str | None = None
    participant = obj.get("participant")
    if isinstance(participant, Mapping):
        who = _participant_identity(participant)
        if who is None:
            return None  # two people's joins must not share a key
        parts.append(who)
        when = _text(participant.get("leave_time")) or _text(participant.get("join_time"))
    elif name == "meeting.ended":
        when = _text(obj.get("end_time")) or _text(obj.get("start_time"))
    elif name == "meeting.started":
        when = _text(obj.get("start_time"))
    if subject is None:
        # Not about a meeting (app_deauthorized and the like): whose and when.
        user = _text(payload.get("user_id")) or _text(payload.get("account_id"))
        if user is None:
            return None
        parts.append(f"user={user}")
        when = _text(payload.get("deauthorization_time"))
    if when is None:
        when = _text(event.get("event_ts"))
    if when is None:
        return None
    parts.append(f"at={when}")
    return "|".join(parts)
