"""Idempotency-Key for requests that create something (a booking, a pack purchase).

The key is stored on the row the request creates, in the same transaction, with a digest of
the request. A retry with the same key and the same request finds that row and gets the
same answer; the same key with another request is refused. Nothing else is kept: a request
that failed wrote nothing, so its retry simply runs again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.http import HttpRequest

from .errors import IdempotencyKeyReused, InvalidInput

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def clean_key(raw: str | None) -> str | None:
    """The header's value, or None when absent. Printable ASCII, 1–255 characters."""
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_LENGTH or not all(" " <= c <= "~" for c in key):
        raise InvalidInput(
            f"{HEADER} must be 1 to {MAX_LENGTH} printable ASCII characters.",
            details={"field": HEADER})
    return key


def digest(request: dict[str, Any]) -> str:
    """A stable fingerprint of what was asked (canonical JSON, SHA-256)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_same_request(stored_digest: str, request_digest: str) -> None:
    if stored_digest != request_digest:
        raise IdempotencyKeyReused(details={"header": HEADER})


def key_from(request: HttpRequest) -> str | None:
    """The request's Idempotency-Key header, checked (None when absent)."""
    return clean_key(request.headers.get(HEADER))
