"""A real `coachgate worker` with one bad row in the database (issue 9, item 2): the other
session's gates run on time, the outbox still sends, and the bad row is retried with a
growing delay and its error recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from coachgate.access.models import SessionAccess
from coachgate.kit import clock
from coachgate.notify.models import Notification, Status
from coachgate.notify.rules import LOST_AFTER
from tests.access.test_bad_rows import corrupt
from tests.clients import DiscordEnv
from tests.e2e.test_access_worker import POLICY, Worker, book_soon, wait_for
from tests.factories import make_coach, make_offer, make_student

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(discord: DiscordEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Worker]:
    monkeypatch.setenv("COACHGATE_EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
    w = Worker(discord, tmp_path / "worker.out")
    yield w
    w.stop()


def test_a_bad_row_stops_nothing_in_the_worker(discord: DiscordEnv, running: Worker) -> None:
    now = clock.now()
    coaches = [make_coach(f"coach{i}@test.example") for i in range(2)]
    students = [make_student(f"student{i}@test.example") for i in range(2)]
    for u in (*coaches, *students):
        discord.link(u, now=now)
    people: dict[str, Any] = {
        "students": students,
        "offers": [make_offer(c, delivery="discord_voice", access_policy=POLICY)
                   for c in coaches]}
    good = book_soon(people, 0, start_in=3, length=2)
    bad = book_soon(people, 1, start_in=3, length=30)
    corrupt(bad, access_policy={"revoke_after_s": "Infinity"})
    lost = Notification.objects.create(  # its wake-up was lost: only the sweep sends it
        key="lost:e2e", channel="email", user=students[0], template="booking_confirmed",
        context={"session_id": good.pk, "offer_title": "t", "coach_name": "c",
                 "starts_at": good.starts_at.isoformat(), "ends_at": good.ends_at.isoformat()},
        status=Status.PENDING, next_attempt_at=now - LOST_AFTER - timedelta(seconds=1),
        created_at=now)

    running.start()

    def phase(session_id: int) -> str:
        return SessionAccess.objects.get(pk=session_id).phase

    wait_for(lambda: phase(good.pk) == "granted", 10, "the good session's grant")
    wait_for(lambda: Notification.objects.get(pk=lost.pk).status == Status.SENT, 10,
             "the outbox sweep to send the lost notification")
    wait_for(lambda: phase(good.pk) == "revoked", 15, "the good session's revoke")
    wait_for(lambda: SessionAccess.objects.get(pk=bad.pk).attempts >= 4, 20,
             "four failed runs of the bad row")
    row = SessionAccess.objects.get(pk=bad.pk)
    assert row.error_kind == "data" and "revoke_after_s" in row.last_error
    assert row.phase == "none" and row.channel_id == ""
    assert row.last_run_at is not None and row.next_due_at is not None
    # The delay after the n-th failure in a row is 2^(n-1) seconds.
    assert row.next_due_at - row.last_run_at == timedelta(seconds=2 ** (row.attempts - 1))
    assert not [c for c in discord.session_channels()
                if c["name"].startswith(f"cg-{bad.pk}-")]
