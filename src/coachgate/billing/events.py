"""Billing events for the domains above billing (packs).

``booking_settled`` is sent synchronously *inside* the settlement's transaction, so what a
receiver changes (a pack's remaining count) commits or rolls back together with the
settlement itself: it happens exactly once because the settlement does.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent with: settlement (billing.models.Settlement), consumes (bool), now (datetime)
booking_settled = Signal()
