"""The SQL of one won and one lost POST /api/v1/bookings (WSGI called directly), to see
what a booking sends. Not a benchmark: ``./run pg -- .venv/bin/python bench/_show_queries.py``."""

from __future__ import annotations

from datetime import time as dtime
from datetime import timedelta

from _kit import make_coach, setup_django
from _profile_http import wsgi_call


def main() -> int:
    setup_django()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog
    from coachgate.kit import clock
    from coachgate.scheduling import services as scheduling
    from coachgate.wsgi import application

    admin = accounts.create_user(email="admin@q.test", password=None, role="admin")
    coach = make_coach(admin, "coach@q.test")
    scheduling.set_weekly_availability(
        coach, [scheduling.RuleInput(d, dtime(0), dtime(23, 59)) for d in range(7)])
    offer = catalog.set_offer_status(coach, catalog.create_offer(coach, {
        "title": "Q", "price_minor": 5000, "currency": "USD", "duration_minutes": 60,
        "delivery": "jitsi", "min_notice_minutes": 0, "horizon_days": 730}).pk, "published")
    student = accounts.create_user(email="student@q.test", password=None)
    token = accounts.issue_token(student, "q").raw
    now = clock.now()
    slots = scheduling.list_slots(None, offer, start=now + timedelta(days=1),
                                  end=now + timedelta(days=3), now=now)
    body = {"offer_id": offer.pk, "start": slots[1].start.isoformat()}
    wsgi_call(application, "POST", "/api/v1/bookings", token,
              {"offer_id": offer.pk, "start": slots[0].start.isoformat()})  # warm
    for label, want in (("won", 201), ("lost", 409)):
        with CaptureQueriesContext(connection) as q:
            code, _ = wsgi_call(application, "POST", "/api/v1/bookings", token, body)
        assert code == want, code
        print(f"--- {label} ({code}): {len(q.captured_queries)} statements")
        for item in q.captured_queries:
            print(f"  {item['time']}s  {item['sql'][:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
