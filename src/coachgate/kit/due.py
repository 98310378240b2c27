"""Timer rows: claiming rows whose ``next_due_at`` has come, with a lease.

A model that uses this has ``next_due_at``, ``lease_until`` and ``lease_owner`` (and a
partial index on ``next_due_at``). Workers claim due rows with a short lease instead of
holding a database lock across work: a crashed worker's claim simply expires, and on
PostgreSQL two workers skip each other's rows (SKIP LOCKED) instead of queueing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Model, Q


def _free(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lte=now)


def claim_due(model: type[Model], *, now: datetime, owner: str, lease: timedelta,
              limit: int) -> list[Any]:
    """Claim up to ``limit`` due rows (oldest first) for ``owner``; returns their keys."""
    manager = model._default_manager
    with transaction.atomic():
        qs = manager.filter(next_due_at__lte=now).filter(_free(now)).order_by("next_due_at")
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        keys = list(qs.values_list("pk", flat=True)[:limit])
        if keys:
            manager.filter(pk__in=keys).update(lease_until=now + lease, lease_owner=owner)
    return keys


def claim_one(model: type[Model], pk: Any, *, now: datetime, owner: str,
              lease: timedelta) -> bool:
    """Claim one row whatever its due time (a direct call), unless another run holds it."""
    return bool(model._default_manager.filter(pk=pk).filter(_free(now))
                .update(lease_until=now + lease, lease_owner=owner))


def release(model: type[Model], pk: Any, *, owner: str, **fields: Any) -> None:
    """End our claim and write the row's new state (``next_due_at`` etc.)."""
    model._default_manager.filter(pk=pk, lease_owner=owner).update(
        lease_until=None, lease_owner="", **fields)
