"""A lock wait that runs out is never a 500 (issue 9, item 12): while another connection
holds the lock a booking needs (SQLite: the one write lock; PostgreSQL: a table lock), the
API answers 503 ``database_busy`` with ``Retry-After`` and the pages answer 503 too; nothing
is written, and the same request succeeds once the lock is gone.

The lock wait is lowered for the test (SQLite's busy timeout, PostgreSQL's lock_timeout)
so that it runs out in a fraction of a second instead of 30 s.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from coachgate.kit import clock
from coachgate.kit.errors import DatabaseBusy
from coachgate.scheduling.models import Booking
from tests.clients import Api
from tests.factories import token_for

pytestmark = pytest.mark.django_db(transaction=True)

LOCK_WAIT_S = 0.2


@contextmanager
def short_lock_wait() -> Iterator[None]:
    """This thread's connection waits at most LOCK_WAIT_S for a lock."""
    conn = connections["default"]
    if conn.vendor == "sqlite":
        options = conn.settings_dict["OPTIONS"]
        before = options.get("timeout")
        conn.close()
        options["timeout"] = LOCK_WAIT_S  # read when the connection opens
        try:
            yield
        finally:
            conn.close()
            options["timeout"] = before
    else:
        with conn.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{int(LOCK_WAIT_S * 1000)}ms'")
        try:
            yield
        finally:
            with conn.cursor() as cursor:
                cursor.execute("RESET lock_timeout")


@contextmanager
def lock_held_by_another_connection() -> Iterator[None]:
    """Another connection (another process's, in production) holds what a booking
    writes: SQLite's write lock, PostgreSQL's sessions table."""
    default = connections["default"]
    other = default.__class__(copy.deepcopy(default.settings_dict), alias="holder")
    try:
        with other.cursor() as cursor:
            if default.vendor == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            else:
                cursor.execute("BEGIN")
                cursor.execute("LOCK TABLE scheduling_session IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                cursor.execute("ROLLBACK")
    finally:
        other.close()


def a_bookable_start() -> Any:
    # Coaches are available 09:00-17:00 London every day; 10:00 UTC is inside in any season.
    return (clock.now() + timedelta(days=3)).replace(hour=10, minute=0, second=0,
                                                     microsecond=0)


def test_the_api_answers_503_database_busy_with_retry_after(offer, student) -> None:
    api = Api(token_for(student))
    body = {"offer_id": offer.pk, "start": a_bookable_start().isoformat()}
    with short_lock_wait():
        with lock_held_by_another_connection():
            r = api.post("/bookings", body)
        assert r.status_code == 503, r.content
        assert r.json_body["code"] == DatabaseBusy.code == "database_busy"
        assert r["Retry-After"] == str(DatabaseBusy.retry_after_s)
        assert not Booking.objects.exists()
        assert api.post("/bookings", body).status_code == 201  # the lock is gone: booked


def test_a_page_answers_503_with_retry_after(offer, student) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(student)
    start = a_bookable_start().isoformat()
    with short_lock_wait():
        with lock_held_by_another_connection():
            r = client.post(f"/offers/{offer.pk}/book", {"start": start})
        assert r.status_code == 503 and r["Retry-After"] == str(DatabaseBusy.retry_after_s)
        assert "try again" in r.content.decode()
        assert not Booking.objects.exists()
        assert client.post(f"/offers/{offer.pk}/book", {"start": start}).status_code == 302
    assert Booking.objects.count() == 1
