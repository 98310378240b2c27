"""Settlement burst: 10,000 sessions ending within the same minute, settled by the worker.

PostgreSQL (run it with ``./run bench bench_settlement_burst``, which starts a throwaway
cluster), two ``coachgate worker`` processes, the offline gateway. Each session is a
one-to-one booking of a 60-minute, 50.00 USD offer with its card already authorised, and
its wake-up task enqueued for its end, as a booking leaves them. Ends are spread over one
minute that starts 20 s after setup. Nothing marks an outcome, so each session is settled
by its scheduled-end gate: COMPLETED, 5000 charged, 4500 to the coach, 500 fee, captured.

Printed: settlements per second, lateness of each settlement after its session's end
(p50 / p99 / max, from the settlement gate row's write time), the time from the last end
until everything was settled, and the double-settlement checks (must all be 0): more than
one settlement per booking, more than one settle / capture ledger entry per booking, a
payment captured beyond its amount, an unbalanced ledger, wrong totals.

    ./run bench bench_settlement_burst                  # 10,000 sessions, 2 workers
    ./run bench bench_settlement_burst --sessions 2000 --workers 1
    ./run bench bench_settlement_burst --spread 0      # all 10,000 end at the same instant
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--spread", type=float, default=60,
                        help="seconds over which the ends are spread (0: all at once)")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 sessions over 20 s (where --sessions / --spread are not given)")
    args = parser.parse_args()
    if args.quick:
        if args.sessions == parser.get_default("sessions"):
            args.sessions = 2_000
        if args.spread == parser.get_default("spread"):
            args.spread = 20
    if not os.environ.get("DATABASE_URL"):
        print("needs PostgreSQL: ./run bench bench_settlement_burst", file=sys.stderr)
        return 2
    from _kit import setup_django

    setup_django()
    from django.db import connection, transaction
    from django.db.models import Count, Sum

    from coachgate.access.models import SessionAccess
    from coachgate.access.rules import Phase, access_window
    from coachgate.accounts.models import Role, User
    from coachgate.billing import ledger
    from coachgate.billing.models import (
        BookingCharge,
        JournalEntry,
        LedgerLine,
        Payment,
        PaymentStatus,
        SessionBilling,
        Settlement,
    )
    from coachgate.billing.tasks import run_due
    from coachgate.catalog.models import CoachProfile, Offer
    from coachgate.catalog.rules import parse_access_policy
    from coachgate.kit import clock, due
    from coachgate.scheduling.models import Booking, Session

    n = args.sessions
    t0 = time.monotonic()
    now = clock.now()
    with transaction.atomic():
        coaches = User.objects.bulk_create(
            User(email=f"coach{i}@bench.test", role=Role.COACH)
            for i in range(n))
        students = User.objects.bulk_create(
            User(email=f"student{i}@bench.test") for i in range(n))
        profiles = CoachProfile.objects.bulk_create(
            CoachProfile(user=u, display_name=f"Coach {i}", timezone="UTC", approved_at=now)
            for i, u in enumerate(coaches))
        offers = Offer.objects.bulk_create(
            Offer(coach=p, title="Bench", price_minor=5000, currency="USD",
                  duration_minutes=60, session_type="video", delivery="jitsi",
                  status="published", published_at=now) for p in profiles)
        # One session per coach (a coach's sessions cannot overlap); ends spread evenly over
        # the minute that starts 20 s after setup.
        first_end = now + timedelta(seconds=20 + 0.003 * n)  # setup takes ~2 ms a session
        sessions = Session.objects.bulk_create(
            Session(coach=p, offer=o,
                    starts_at=first_end + timedelta(seconds=args.spread * i / n)
                    - timedelta(hours=1),
                    ends_at=first_end + timedelta(seconds=args.spread * i / n),
                    status="scheduled", capacity=1, seats_taken=1)
            for i, (p, o) in enumerate(zip(profiles, offers, strict=True)))
        bookings = Booking.objects.bulk_create(
            Booking(session=s, student=students[i], booked_at=now - timedelta(days=2))
            for i, s in enumerate(sessions))
        # What a booking leaves behind (billing.services.record_booking), with the card
        # authorised the day before (billing's authorisation gate already ran).
        BookingCharge.objects.bulk_create(
            BookingCharge(booking=b, session=s, student_id=b.student_id, coach_id=s.coach_id,
                          price_minor=5000, currency="USD", created_at=now)
            for b, s in zip(bookings, sessions, strict=True))
        SessionBilling.objects.bulk_create(
            SessionBilling(session=s, settle_at=s.ends_at, next_due_at=s.ends_at)
            for s in sessions)
        Payment.objects.bulk_create(
            Payment(key=f"booking:{b.pk}", student_id=b.student_id, gateway="offline",
                    currency="USD", amount_minor=5000, status=PaymentStatus.AUTHORIZED,
                    ref=f"off_booking:{b.pk}", authorize_at=now - timedelta(days=1),
                    created_at=now) for b in bookings)
    # Each session's access row as the access gates left it an hour into the session
    # (granted, reminders and "access is open" sent; next gate: the revoke, after this
    # run), and one settlement wake-up per session, asked for the way billing asks
    # (kit.due.wake: one task per half second, however many sessions).
    policy = parse_access_policy({})
    rows = []
    for s in sessions:
        start, end = access_window(s.starts_at, s.ends_at, policy)
        rows.append(SessionAccess(session=s, discord=False, mode=policy.discord_mode,
                                  phase=Phase.GRANTED, window_start=start, window_end=end,
                                  next_due_at=end, access_open_sent=True,
                                  reminder_sent_before_s=min(policy.reminders_before_s)))
    SessionAccess.objects.bulk_create(rows, batch_size=2000)
    for s in sessions:
        due.wake(run_due, s.ends_at)
    last_end = max(s.ends_at for s in sessions)
    print(f"{n} sessions ready in {time.monotonic() - t0:.1f}s; ends from "
          f"{(first_end - clock.now()).total_seconds():.1f}s to "
          f"{(last_end - clock.now()).total_seconds():.1f}s from now", flush=True)
    connection.close()

    env = os.environ.copy()
    env["COACHGATE_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    workers = [subprocess.Popen([sys.executable, "-m", "coachgate.cli", "worker"], env=env,
                                stdout=subprocess.DEVNULL)
               for _ in range(args.workers)]
    try:
        deadline = time.monotonic() + 60 + args.timeout
        while time.monotonic() < deadline:
            left = SessionBilling.objects.filter(settled_at__isnull=True).count()
            if left == 0:
                break
            time.sleep(0.5)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(20)

    rows = list(SessionBilling.objects.filter(settled_at__isnull=False)
                .values_list("settle_at", "updated_at"))
    lateness = [(written - due).total_seconds() for due, written in rows]
    settled = len(rows)
    done_at = max(w for _, w in rows) if rows else clock.now()
    span = (done_at - first_end).total_seconds()
    doubles = {
        "bookings with >1 settlement": Settlement.objects.values("booking").annotate(
            c=Count("pk")).filter(c__gt=1).count(),
        "settle entries beyond one per booking": JournalEntry.objects.filter(
            kind="settle").count() - Settlement.objects.filter(charge_minor__gt=0).count(),
        "capture entries beyond one per payment": JournalEntry.objects.filter(
            kind="capture").count() - Payment.objects.filter(
            status=PaymentStatus.CAPTURED).count(),
        "payments captured beyond their amount": Payment.objects.filter(
            captured_minor__gt=5000).count(),
        "ledger imbalance (minor units)": abs(
            LedgerLine.objects.aggregate(t=Sum("amount_minor"))["t"] or 0),
    }
    coach_total = (LedgerLine.objects.filter(account__startswith="coach:")
                   .aggregate(t=Sum("amount_minor"))["t"] or 0)
    fees = ledger.balance(ledger.FEES, "USD")
    print(f"RESULT sessions={n} workers={args.workers} database={connection.vendor} "
          f"ends spread over {args.spread:g}s")
    print(f"RESULT settled={settled} of {n}")
    print(f"RESULT settlements_per_second={settled / max(span, 1e-9):.0f} "
          f"(first end → last settlement: {span:.1f}s)")
    print(f"RESULT all_settled_after_last_end={(done_at - last_end).total_seconds():.1f}s")
    if lateness:
        print(f"RESULT lateness p50={statistics.median(lateness):.2f}s "
              f"p99={pct(lateness, 0.99):.2f}s max={max(lateness):.2f}s")
    for label, value in doubles.items():
        print(f"RESULT double_check {label}: {value}")
    print(f"RESULT totals coach_payouts={coach_total} (expected {4500 * settled}) "
          f"fees={fees} (expected {500 * settled})")
    ok = (settled == n and all(v == 0 for v in doubles.values())
          and coach_total == 4500 * settled and fees == 500 * settled)
    print("RESULT " + ("OK" if ok else "FAILED"))
    from _kit import report

    size = f"{n} sessions over {args.spread:g}s, {args.workers} workers"
    report("settlement burst: sessions settled", settled, "sessions", n, "eq", note=size)
    report("settlement burst: all settled after the last end",
           round((done_at - last_end).total_seconds(), 1), "s", 60, "max", note=size)
    report("settlement burst: double settlements and imbalances (sum of checks)",
           sum(doubles.values()), "", 0, "eq", note=size)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
