"""Discord calls per session lifecycle, in each provisioning mode.

One 1:1 session is booked and its gates are run at their times (provision/grant, the
15-minute reminder, revoke) against the Discord emulator; the calls the worker made are
counted from its own call log and checked against the emulator's. One-time calls (the
bot's own id, a category, the offer's shared role and channel in offer_role mode) are
shown apart. Target: 2 in the default mode; reference/000's design needed 6.

    .venv/bin/python bench/bench_discord_calls.py   (--quick: accepted, the same size)
"""

from __future__ import annotations

from collections import Counter
from datetime import time, timedelta

from _kit import discord_guild, make_coach, report, setup_django


def main() -> int:
    setup_django()
    from coachgate.access import services
    from coachgate.access.models import DiscordCall
    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog
    from coachgate.demo import link_to_emulator
    from coachgate.kit import clock
    from coachgate.scheduling import services as scheduling

    emu, guild = discord_guild()
    now = clock.now()
    admin = accounts.create_user(email="admin@calls.test", password=None, role="admin")
    coach = make_coach(admin, "coach@calls.test")
    scheduling.set_weekly_availability(
        coach, [scheduling.RuleInput(d, time(0), time(23, 59)) for d in range(7)])
    student = accounts.create_user(email="student@calls.test", password=None)
    for user in (coach, student):
        link_to_emulator(emu, guild, user, now=now)
    rows = []
    for i, mode in enumerate(["member_overwrites", "session_role", "offer_role"]):
        offer = catalog.create_offer(coach, {
            "title": f"calls {mode}", "price_minor": 100, "currency": "USD",
            "duration_minutes": 60, "delivery": "discord_voice", "min_notice_minutes": 0,
            "access_policy": {"discord_mode": mode}})
        catalog.set_offer_status(coach, offer.pk, "published")
        start = (now + timedelta(days=2 + i)).replace(hour=10, minute=0, second=0,
                                                       microsecond=0)
        session = scheduling.book_session(student, offer.pk, start, now=now).session
        shared_before = DiscordCall.objects.filter(access__isnull=True).count()
        for at in (start - timedelta(hours=24), start - timedelta(hours=2),
                   start - timedelta(minutes=15), start + timedelta(hours=2)):
            services.converge(session.pk, now=at)
        # Calls for something sessions share (the bot's id, a category, the offer's role
        # and channel) are recorded without a session.
        per_session = [(c.method, c.route)
                       for c in DiscordCall.objects.filter(access_id=session.pk)]
        one_time = DiscordCall.objects.filter(access__isnull=True).count() - shared_before
        rows.append((mode, len(per_session), one_time, Counter(per_session)))
    emulator_calls = len([c for c in emu.calls if c[1] != "GET"])
    emu.stop()
    print("Discord calls per session lifecycle (book -> grant -> reminders -> revoke)")
    print(f"{'mode':20} {'per session':>11} {'one-time':>9}  calls")
    for mode, n, once, counted in rows:
        detail = ", ".join(f"{k[0]} {k[1]} x{v}" for k, v in counted.items())
        print(f"{mode:20} {n:11d} {once:9d}  {detail}")
    print(f"(emulator saw {emulator_calls} mutating calls in total)")
    default = rows[0][1]
    print(f"target: 2 in the default mode -> {'met' if default == 2 else 'NOT met'} "
          f"({default}); reference/000's design: 6")
    report("Discord calls per session, default mode", default, "calls", 2, "eq",
           note="one lifecycle; --quick is the same size")
    print("command: .venv/bin/python bench/bench_discord_calls.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
