"""Packs use cases (placeholder until the packs services land)."""

from __future__ import annotations

from datetime import datetime


def sweep(*, now: datetime | None = None, owner: str = "") -> None:
    return None
