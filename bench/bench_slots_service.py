"""Slot listing through the service (database reads + slot engine), not just the pure rules.

One coach in Europe/London, Mon-Sat 08:00-20:00, a 60-minute offer with 10-minute buffers
and a 15-minute step, 300 booked sessions, 60 days of slots. Prints median and p95 ms of
listing all 60 days through scheduling.services.slot_page, a page (MAX_SLOT_LIMIT slots)
at a time as a client follows `next`, and of one full page. Runs on DATABASE_URL (./run
bench runs it on a throwaway PostgreSQL) or on a temporary SQLite file when DATABASE_URL is
unset.

    ./run bench bench_slots_service
    .venv/bin/python bench/bench_slots_service.py          # SQLite
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time as walltime
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
if not os.environ.get("DATABASE_URL"):
    os.environ.setdefault("COACHGATE_DATA_DIR", tempfile.mkdtemp(prefix="cg-bench-"))

import django  # noqa: E402

django.setup()

from _kit.report import report  # noqa: E402  (bench/ is the script's directory)
from django.core.management import call_command  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "30" if "--quick" in sys.argv else "100"))
NOW = datetime(2031, 3, 3, 6, 0, tzinfo=UTC)  # a Monday; the window crosses London's DST


def main() -> int:
    call_command("migrate", verbosity=0, interactive=False)
    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog
    from coachgate.scheduling import services as scheduling
    from coachgate.scheduling.models import Session

    admin = accounts.create_user(email="bench-admin@x.test", password=None, role="admin")
    coach = accounts.create_user(email="bench-coach@x.test", password=None)
    app = accounts.apply_as_coach(coach, display_name="Bench", bio="", specialties=[],
                                  timezone="Europe/London")
    catalog.approve_application(admin, app.pk)
    coach.refresh_from_db()
    scheduling.set_weekly_availability(
        coach, [scheduling.RuleInput(d, time(8), time(20)) for d in range(6)])
    offer = catalog.create_offer(coach, {
        "title": "Bench", "price_minor": 1000, "currency": "USD", "duration_minutes": 60,
        "delivery": "jitsi", "buffer_before_minutes": 10, "buffer_after_minutes": 10,
        "slot_step_minutes": 15, "min_notice_minutes": 120, "horizon_days": 60,
    })
    catalog.set_offer_status(coach, offer.pk, "published")
    offer.refresh_from_db()
    end = NOW + timedelta(days=60)

    def all_slots() -> list[scheduling.SlotView]:
        found: list[scheduling.SlotView] = []
        start: datetime | None = NOW
        while start is not None:
            page = scheduling.slot_page(None, offer, start=start, end=end, now=NOW,
                                        limit=scheduling.MAX_SLOT_LIMIT)
            found += page.slots
            start = page.next_start
        return found

    # 300 sessions spread over the 60 days, on the grid, respecting the buffers.
    free = all_slots()
    chosen: list[datetime] = []
    for slot in free:
        if not chosen or slot.start >= chosen[-1] + timedelta(minutes=90):
            chosen.append(slot.start)
    chosen = chosen[:: max(1, len(chosen) // 300)][:300]
    Session.objects.bulk_create(
        Session(coach=offer.coach, offer=offer, starts_at=s, ends_at=s + timedelta(hours=1),
                seats_taken=1) for s in chosen)
    booked = Session.objects.count()

    timings: list[float] = []
    page_timings: list[float] = []
    count = 0
    for _ in range(RUNS):
        t0 = walltime.perf_counter()
        count = len(all_slots())
        timings.append((walltime.perf_counter() - t0) * 1000)
        t0 = walltime.perf_counter()
        scheduling.slot_page(None, offer, start=NOW, end=end, now=NOW,
                             limit=scheduling.MAX_SLOT_LIMIT)
        page_timings.append((walltime.perf_counter() - t0) * 1000)
    timings.sort()
    page_timings.sort()
    from django.db import connection

    p95 = timings[int(0.95 * (len(timings) - 1))]
    page_p95 = page_timings[int(0.95 * (len(page_timings) - 1))]
    pages = -(-count // scheduling.MAX_SLOT_LIMIT)
    print(f"slot listing through the service on {connection.vendor}: {booked} booked sessions, "
          f"{count} slots over 60 days in {pages} pages, {RUNS} runs")
    print(f"  all 60 days: median={statistics.median(timings):.2f} ms  p95={p95:.2f} ms  "
          f"target median <= 20 ms  {'OK' if statistics.median(timings) <= 20 else 'MISSED'}")
    report(f"slots through the service, {connection.vendor}, all 60 days: median",
           round(statistics.median(timings), 2), "ms", 20, "max",
           note=f"{count} slots in {pages} pages, {RUNS} runs")
    print(f"  one page of {scheduling.MAX_SLOT_LIMIT}: "
          f"median={statistics.median(page_timings):.2f} ms  p95={page_p95:.2f} ms")
    print("  reproduce: ./run bench bench_slots_service   (SQLite: .venv/bin/python "
          "bench/bench_slots_service.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
