"""Packs API (placeholder until the packs routes land)."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["packs"])
