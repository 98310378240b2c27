"""Due-work lookup: the cost of finding what is due must not grow with history.

Stores 10k, then 100k, then 1M sessions with their access rows (90% finished: nothing
due; 10% upcoming: due later; 200 due now; the session rows are stored as cancelled so that
loading a million sessions of one coach does not spend its time in SQLite's overlap
trigger, which scans the coach's earlier sessions) and times the worker's lookup
(services.due_session_ids: a range scan of the partial index on next_due_at) beside the
same predicate forced into a full table scan. Prints medians and the 1M/10k ratio.
Target: the indexed lookup at 1M within 2x of 10k.

    .venv/bin/python bench/bench_due_lookup.py                     # SQLite
    ./run bench bench_due_lookup                                  # PostgreSQL
    .venv/bin/python bench/bench_due_lookup.py --sizes 10000,100000  # quicker
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from _kit import make_coach, report, setup_django

setup_django(migrate=False)

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

NOW = datetime(2031, 3, 3, 12, 0, tzinfo=UTC)
DUE_NOW = 200


def timed(fn, runs: int = 30) -> float:  # type: ignore[no-untyped-def]
    fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def full_scan() -> list[int]:
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET LOCAL enable_indexscan = off")
            cur.execute("SET LOCAL enable_bitmapscan = off")
            cur.execute("SELECT session_id FROM access_sessionaccess WHERE next_due_at <= %s "
                        "ORDER BY next_due_at LIMIT 500", [NOW])
        else:
            cur.execute("SELECT session_id FROM access_sessionaccess NOT INDEXED "
                        "WHERE next_due_at <= %s ORDER BY next_due_at LIMIT 500",
                        [NOW.isoformat(sep=" ")])
        return [r[0] for r in cur.fetchall()]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--quick", action="store_true", help="sizes 10000,100000 (unless --sizes)")
    a = p.parse_args()
    if a.quick and a.sizes == p.get_default("sizes"):
        a.sizes = "10000,100000"
    sizes = [int(x) for x in a.sizes.split(",")]
    call_command("migrate", verbosity=0, interactive=False)
    from coachgate.access.models import SessionAccess
    from coachgate.access.services import due_session_ids
    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog
    from coachgate.catalog.models import CoachProfile, Offer
    from coachgate.scheduling.models import Session

    admin = accounts.create_user(email="admin@due.test", password=None, role="admin")
    coach = make_coach(admin, "coach@due.test", name="Due")
    offer = catalog.create_offer(coach, {"title": "Due", "price_minor": 100, "currency": "USD",
                                         "duration_minutes": 30, "delivery": "jitsi"})
    offer = Offer.objects.get(pk=offer.pk)
    profile = CoachProfile.objects.get(user=coach)
    rng = random.Random(3)
    stored = 0
    results = []
    first = datetime(1990, 1, 1, tzinfo=UTC)
    due_ids: list[int] = []
    for size in sizes:
        t0 = time.perf_counter()
        while stored < size:
            chunk = min(20_000, size - stored)
            sessions = [Session(coach=profile, offer=offer,
                                starts_at=first + timedelta(hours=stored + i),
                                ends_at=first + timedelta(hours=stored + i, minutes=30),
                                status="cancelled", capacity=1, seats_taken=1)
                        for i in range(chunk)]
            with transaction.atomic():
                Session.objects.bulk_create(sessions, batch_size=5000)
                rows = []
                for s in sessions:
                    roll = rng.random()
                    due = None
                    if roll < 0.10:
                        due = NOW + timedelta(minutes=rng.randint(1, 60 * 24 * 60))
                    rows.append(SessionAccess(session=s, window_start=s.starts_at,
                                              window_end=s.ends_at, next_due_at=due,
                                              phase="revoked" if due is None else "none"))
                SessionAccess.objects.bulk_create(rows, batch_size=5000)
            stored += chunk
        # Keep exactly DUE_NOW rows due at NOW whatever the size.
        with transaction.atomic():
            if due_ids:
                SessionAccess.objects.filter(pk__in=due_ids).update(next_due_at=None)
            due_ids = list(SessionAccess.objects.filter(next_due_at__isnull=True)
                           .order_by("?").values_list("pk", flat=True)[:DUE_NOW])
            SessionAccess.objects.filter(pk__in=due_ids).update(
                next_due_at=NOW - timedelta(seconds=1))
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
        load_s = time.perf_counter() - t0
        found = due_session_ids(NOW)
        assert sorted(found) == sorted(due_ids), "lookup must find exactly the due rows"
        assert sorted(full_scan()) == sorted(due_ids)
        indexed = timed(lambda: due_session_ids(NOW))
        scan = timed(full_scan, runs=5 if size >= 1_000_000 else 15)
        results.append((size, indexed, scan))
        print(f"  {size:>9,} stored (+{load_s:.0f}s to load): indexed {indexed:.3f} ms, "
              f"full scan {scan:.1f} ms", flush=True)
    print()
    print(f"Due-work lookup on {connection.vendor} ({DUE_NOW} rows due, median ms)")
    print(f"{'sessions stored':>16} {'indexed':>10} {'full scan':>10}")
    for size, indexed, scan in results:
        print(f"{size:>16,} {indexed:10.3f} {scan:10.1f}")
    if len(results) > 1:
        ratio = results[-1][1] / results[0][1]
        print(f"indexed {results[-1][0]:,} / {results[0][0]:,}: {ratio:.2f}x "
              f"(target <= 2x: {'met' if ratio <= 2 else 'NOT met'}); full scan: "
              f"{results[-1][2] / results[0][2]:.0f}x")
        report(f"due lookup, {connection.vendor}: indexed {results[-1][0]:,} / "
               f"{results[0][0]:,} stored", round(ratio, 2), "x", 2, "max",
               note=f"{results[0][1]:.3f} -> {results[-1][1]:.3f} ms")
    print("command: .venv/bin/python bench/bench_due_lookup.py  "
          "(PostgreSQL: ./run bench bench_due_lookup)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
