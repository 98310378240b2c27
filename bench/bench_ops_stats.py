"""Admin statistics at scale: the /ops/ page's queries over a period holding 1,000,000
sessions, on PostgreSQL.

Fills the database with INSERT ... SELECT generate_series (seconds, not hours): 500
coaches with one offer each; 1,000,000 sessions over 90 days (45 minutes every 64
minutes per coach, so the no-overlap constraint holds), with a realistic mix of outcomes;
one booking per session; a settlement for every session with an outcome; an access row per
session and one gate run per session (``access_gaterun``, what the worker records). Then
VACUUM ANALYZE and times ``coachgate.web.ops.stats.collect`` (every figure of the page:
sessions per day, hours per coach, gate lateness, money per currency) over the whole
period: the median of 5 runs after one warm-up, each query's own median beside it, and a
whole GET /ops/ as an admin. Target: the page's queries within 1.0 s.

    ./run bench bench_ops_stats                 # PostgreSQL, 1,000,000 sessions
    ./run bench --quick bench_ops_stats         # 100,000 sessions
    python3 scripts/pgcluster.py run -- .venv/bin/python bench/bench_ops_stats.py

PostgreSQL only (the figure is PostgreSQL's; SQLite's embedded installs are small): on
SQLite the script says so and exits.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from _kit import report, setup_django

setup_django(migrate=False)

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

FIRST = date(2031, 1, 1)
DAYS = 90
COACHES = 500
TARGET_S = 1.0


def timed(fn: Callable[[], Any], runs: int = 5) -> float:
    fn()  # warm-up: plans and caches, as a page seen twice
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def fill(n: int) -> None:
    from coachgate.accounts import services as accounts
    from coachgate.accounts.models import User
    from coachgate.catalog.models import CoachProfile, Offer

    admin = accounts.create_user(email="admin@ops.test", password=None, role="admin")
    users = User.objects.bulk_create([User(email=f"coach{i}@ops.test", role="coach")
                                      for i in range(COACHES)])
    now = datetime(2030, 12, 1, tzinfo=UTC)
    profiles = CoachProfile.objects.bulk_create([
        CoachProfile(user=u, display_name=f"Coach {i}", timezone="UTC", status="approved",
                     approved_at=now) for i, u in enumerate(users)])
    Offer.objects.bulk_create([
        Offer(coach=p, title="Hour", price_minor=5000, currency="USD" if i % 5 else "EUR",
              duration_minutes=45, delivery="discord_voice", status="published")
        for i, p in enumerate(profiles)])
    students = User.objects.bulk_create([User(email=f"s{i}@ops.test") for i in range(1000)])
    start = datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC)
    params = {"n": n, "c": COACHES, "start": start, "c0": profiles[0].pk,
              "s0": students[0].pk, "now": now}
    steps = [
        ("sessions", """
        INSERT INTO scheduling_session (coach_id, offer_id, starts_at, ends_at, status,
            capacity, seats_taken, reschedule_count, access_policy, money_policy,
            created_at, updated_at)
        SELECT p.id, o.id, t.at, t.at + interval '45 minutes',
            CASE WHEN g.r < 70 THEN 'completed' WHEN g.r < 75 THEN 'no_show_student'
                 WHEN g.r < 78 THEN 'no_show_coach' WHEN g.r < 83 THEN 'early_end_short'
                 WHEN g.r < 93 THEN 'cancelled' ELSE 'scheduled' END,
            1, 1, 0, '{}', '{}', %(now)s, %(now)s
        FROM (SELECT i, i %% %(c)s AS k, (i::bigint * 7919) %% 100 AS r
              FROM generate_series(0, %(n)s - 1) AS i) g
        JOIN catalog_coachprofile p ON p.id = %(c0)s + g.k
        JOIN catalog_offer o ON o.coach_id = p.id
        CROSS JOIN LATERAL (SELECT %(start)s::timestamptz
                            + (g.i / %(c)s) * interval '64 minutes' AS at) t
        """),
        ("bookings", """
        INSERT INTO scheduling_booking (session_id, student_id, status, intake_answers,
            booked_at, free_cancellation_hours, idempotency_key, request_digest,
            cancellation_outcome)
        SELECT s.id, %(s0)s + s.id %% 1000,
               CASE WHEN s.status = 'cancelled' THEN 'cancelled' ELSE 'active' END,
               '{}', %(now)s, 24, '', '', ''
        FROM scheduling_session s
        """),
        ("settlements", """
        INSERT INTO billing_settlement (booking_id, session_id, student_id, coach_id, outcome,
            currency, price_minor, charge_minor, fee_minor, payout_minor, funded_by,
            settled_at)
        SELECT b.id, s.id, b.student_id, s.coach_id, s.status, o.currency, 5000, m.charge,
               m.charge / 10, m.charge - m.charge / 10, '', s.ends_at
        FROM scheduling_booking b JOIN scheduling_session s ON s.id = b.session_id
        JOIN catalog_offer o ON o.id = s.offer_id
        CROSS JOIN LATERAL (SELECT CASE s.status WHEN 'completed' THEN 5000
                                   WHEN 'no_show_student' THEN 2500
                                   WHEN 'early_end_short' THEN 2500 ELSE 0 END AS charge) m
        WHERE s.status IN ('completed', 'no_show_student', 'no_show_coach', 'early_end_short')
        """),
        ("access rows", """
        INSERT INTO access_sessionaccess (session_id, discord, mode, phase, window_start,
            window_end, lease_owner, guild_id, channel_id, category_id, role_id, archived,
            granted, access_open_sent, error_kind, last_error, attempts, runs,
            discord_calls, updated_at)
        SELECT s.id, true, 'member_overwrites', 'revoked', s.starts_at - interval '2 hours',
               s.ends_at + interval '15 minutes', '', '1', '', '', '', false, '[]', true,
               '', '', 0, 3, 6, %(now)s
        FROM scheduling_session s
        """),
        ("gate runs", """
        INSERT INTO access_gaterun (access_id, kind, due_at, ran_at, late_ms, ok)
        SELECT a.session_id, (ARRAY['reminder', 'grant', 'revoke'])[1 + a.session_id %% 3],
               a.window_start, a.window_start + (l.ms || ' milliseconds')::interval, l.ms,
               a.session_id %% 97 <> 0
        FROM access_sessionaccess a
        CROSS JOIN LATERAL (SELECT (a.session_id::bigint * 2654435761 %% 1000)::int
                            / (1 + (a.session_id %% 7)) AS ms) l
        """),
    ]
    for name, sql in steps:
        t = time.perf_counter()
        with connection.cursor() as cur:
            cur.execute(sql, params)
            count = cur.rowcount
        print(f"  {name}: {count:,} rows in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")  # the visibility map: index-only scans, as in production
    print(f"  VACUUM ANALYZE in {time.perf_counter() - t:.1f} s", flush=True)
    del admin


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sessions", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="100,000 sessions (unless --sessions)")
    a = p.parse_args()
    if a.quick and a.sessions == p.get_default("sessions"):
        a.sessions = 100_000
    if connection.vendor != "postgresql":
        print("bench_ops_stats needs PostgreSQL (set DATABASE_URL; ./run bench gives one).")
        return 0
    call_command("migrate", verbosity=0, interactive=False)
    t0 = time.perf_counter()
    fill(a.sessions)
    print(f"filled in {time.perf_counter() - t0:.0f} s", flush=True)

    from django.test import Client

    from coachgate.access import stats as access_stats
    from coachgate.accounts.models import User
    from coachgate.billing.services import stats as billing_stats
    from coachgate.scheduling import stats as scheduling_stats
    from coachgate.web.ops.stats import collect

    zone = ZoneInfo("UTC")
    last = FIRST + timedelta(days=DAYS - 1)
    start = datetime.combine(FIRST, datetime.min.time(), tzinfo=zone)
    end = start + timedelta(days=DAYS)
    figures = collect(FIRST, last, zone)
    assert figures["totals"]["booked"] == a.sessions, figures["totals"]
    parts = {
        "sessions per day": lambda: scheduling_stats.sessions_by_day(start, end, zone),
        "hours per coach": lambda: scheduling_stats.hours_by_coach(start, end),
        "gate lateness": lambda: access_stats.gate_lateness(start, end),
        "money per currency": lambda: billing_stats.money_by_currency(start, end),
    }
    for name, fn in parts.items():
        print(f"  {name:<20} {timed(fn) * 1000:8.1f} ms (median of 5)", flush=True)
    total = timed(lambda: collect(FIRST, last, zone))
    client = Client()
    client.force_login(User.objects.get(email="admin@ops.test"))
    query = f"/ops/?start={FIRST.isoformat()}&end={last.isoformat()}"

    def page() -> None:
        r = client.get(query)
        assert r.status_code == 200, r.status_code

    whole = timed(page, runs=3)
    print(f"  {'all of the page':<20} {total * 1000:8.1f} ms (median of 5)")
    print(f"  {'GET /ops/ (render)':<20} {whole * 1000:8.1f} ms (median of 3)")
    report(f"ops statistics, PG: the page's queries over {a.sessions:,} sessions", round(total, 3),
           "s", TARGET_S, "max",
           note=f"{DAYS} days, {COACHES} coaches; whole GET /ops/ {whole:.2f} s")
    print("command: ./run bench bench_ops_stats  (--quick: 100,000 sessions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
