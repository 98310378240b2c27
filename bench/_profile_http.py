"""What one API request costs beyond its service call: CPU per request of the WSGI
application (middleware, token auth, JSON in and out) beside the same booking made through
the service directly, in one process, so a shared machine's load does not blur it.

Not a benchmark of its own (`./run bench` runs only bench/*.py without a leading _).

    .venv/bin/python bench/_profile_http.py [--n 200] [--profile 25]    # SQLite scratch
    ./run pg -- .venv/bin/python bench/_profile_http.py                 # PostgreSQL
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Callable
from datetime import time as dtime
from datetime import timedelta
from typing import Any

from _kit import make_coach, setup_django


def wsgi_call(app: Any, method: str, path: str, token: str, body: dict[str, Any] | None
              ) -> tuple[int, bytes]:
    raw = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {token}", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    status: list[str] = []

    def start_response(s: str, _headers: Any, _exc: Any = None) -> Any:
        status.append(s)
        return lambda _data: None

    out = b"".join(app(environ, start_response))
    return int(status[0].split()[0]), out


QUERIES: dict[str, float] = {}


def cpu_ms_each(fn: Callable[[int], Any], n: int, label: str = "") -> float:
    """CPU ms per call of ``fn`` (this process only: the database's CPU is not in it); the
    queries per call go to QUERIES[label]."""
    from django.db import connection

    count = [0]

    def counting(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        count[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counting):
        t0 = time.process_time()
        for i in range(n):
            fn(i)
        spent = (time.process_time() - t0) * 1000 / n
    QUERIES[label] = count[0] / n
    return spent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="requests of each kind")
    p.add_argument("--profile", type=int, default=25, metavar="TOP",
                   help="cProfile (CPU time) one kind of request, print TOP rows (0: off)")
    p.add_argument("--what", choices=["win", "service", "lose", "me"], default="win",
                   help="the requests to profile (default: the winning POSTs)")
    a = p.parse_args()
    setup_django()
    import logging

    from django.db import connection

    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog
    from coachgate.kit import clock
    from coachgate.scheduling import services as scheduling
    from coachgate.wsgi import application

    logging.disable(logging.WARNING)  # one "Conflict" line per losing request otherwise
    admin = accounts.create_user(email="admin@prof.test", password=None, role="admin")
    coaches = [make_coach(admin, f"coach{i}@prof.test") for i in range(3)]
    offers = []
    for coach in coaches:
        scheduling.set_weekly_availability(
            coach, [scheduling.RuleInput(d, dtime(0), dtime(23, 59)) for d in range(7)])
        offer = catalog.create_offer(coach, {
            "title": "Prof", "price_minor": 5000, "currency": "USD", "duration_minutes": 60,
            "delivery": "jitsi", "min_notice_minutes": 0, "horizon_days": 730})
        offers.append(catalog.set_offer_status(coach, offer.pk, "published"))
    student = accounts.create_user(email="student@prof.test", password=None)
    token = accounts.issue_token(student, "prof").raw
    now = clock.now()
    start = now + timedelta(days=1)

    def slots(offer: Any) -> list[str]:
        found = scheduling.list_slots(None, offer, start=start,
                                      end=start + timedelta(days=a.n // 20 + 10), now=now)
        return [s.start.isoformat() for s in found]

    http_slots, service_slots, lose_slots = (slots(o) for o in offers)
    assert min(len(http_slots), len(service_slots)) >= a.n, "widen the window"
    wsgi_call(application, "GET", "/api/v1/me", token, None)  # warm: first use of the token

    me = cpu_ms_each(lambda _i: wsgi_call(application, "GET", "/api/v1/me", token, None),
                     a.n, "me")
    health = cpu_ms_each(lambda _i: wsgi_call(application, "GET", "/healthz", "", None), a.n,
                         "health")

    def post(slot: str, offer: Any, want: int) -> None:
        code, out = wsgi_call(application, "POST", "/api/v1/bookings", token,
                              {"offer_id": offer.pk, "start": slot})
        assert code == want, (code, out[:300])

    prof = cProfile.Profile(time.process_time) if a.profile else None  # CPU, not waits
    if prof and a.what == "win":
        prof.enable()
    http_win = cpu_ms_each(lambda i: post(http_slots[i], offers[0], 201), a.n, "http_win")
    if prof:
        prof.disable()
    if prof and a.what == "service":
        prof.enable()
    service_win = cpu_ms_each(
        lambda i: scheduling.book_session(student, offers[1].pk,
                                          scheduling_start(service_slots[i]),
                                          now=clock.now()), a.n, "service_win")
    if prof and a.what == "service":
        prof.disable()
    post(lose_slots[0], offers[2], 201)
    if prof and a.what == "lose":
        prof.enable()
    http_lose = cpu_ms_each(lambda _i: post(lose_slots[0], offers[2], 409), a.n, "http_lose")
    if prof and a.what == "me":
        prof.enable()
    cpu_ms_each(lambda _i: wsgi_call(application, "GET", "/api/v1/me", token, None), a.n,
                "me (profiled)")
    if prof:
        prof.disable()

    print(f"CPU per request on {connection.vendor}, {a.n} each, one process, no sockets:")
    q = QUERIES
    print(f"  GET /healthz                         {health:6.2f} ms  {q['health']:5.1f} queries")
    print(f"  GET /api/v1/me (token auth, JSON)    {me:6.2f} ms  {q['me']:5.1f} queries")
    print(f"  POST /api/v1/bookings, won (201)     {http_win:6.2f} ms  "
          f"{q['http_win']:5.1f} queries")
    print(f"  book_session() directly, won         {service_win:6.2f} ms  "
          f"{q['service_win']:5.1f} queries")
    print(f"  POST /api/v1/bookings, taken (409)   {http_lose:6.2f} ms  "
          f"{q['http_lose']:5.1f} queries")
    print(f"  => HTTP layer around a won booking   {http_win - service_win:6.2f} ms  "
          f"{q['http_win'] - q['service_win']:5.1f} queries")
    if prof:
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(a.profile)
        stats.sort_stats("tottime").print_stats(a.profile)
        print(out.getvalue())
    return 0


def scheduling_start(iso: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(iso)


if __name__ == "__main__":
    raise SystemExit(main())
