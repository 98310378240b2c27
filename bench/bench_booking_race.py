"""Booking race: many concurrent clients book distinct slots plus contested duplicates.

Issue: "Booking race on PostgreSQL: 32 concurrent clients booking 500 distinct slots of 10
coaches plus contested duplicates: bookings per second and the count of overlapping
sessions found afterwards by a SQL query. Target: >= 200 bookings/s on this 2-core
machine, and 0 overlaps, always."

Run from the repository root, inside a throwaway PostgreSQL 15 cluster:

    ./run bench bench_booking_race [--mode service|http|both] [--repeat 3]
    python3 scripts/pgcluster.py run --durable -- .venv/bin/python bench/bench_booking_race.py

Each client has its own database connection. By default the 32 clients are threads in 4
OS processes (``--client-processes 4``), as a server with 4 worker processes would serve 32
concurrent clients; ``--client-processes 0`` makes each client its own process (on 2 cores
the 32 processes' context switches cost about 40% more CPU per attempt). In ``service`` mode it
calls ``scheduling.services.book_session`` directly (with a fixed ``now``); in ``http`` mode
it POSTs /api/v1/bookings to a waitress server started on 127.0.0.1 (real time, so the slots
are picked in the real future). Every repetition runs on a fresh database cloned from a
template that was migrated and filled once; afterwards the sessions are checked: exactly one
per distinct slot, and no overlaps (services.count_overlapping_sessions() and an independent
SQL self-join here).

Exit codes: 0 all good; 1 a correctness check failed (overlaps, wrong session count,
crashes, unexpected outcomes); 2 refused to run (not PostgreSQL without --allow-sqlite);
3 correct but below the throughput target.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import math
import multiprocessing as mp
import os
import pstats
import queue
import random
import shlex
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # as a script it is there already
from _kit.report import report

TARGET_BOOKINGS_PER_S = 200.0
TARGET_HTTP_BOOKINGS_PER_S = 150.0  # through `coachgate serve --processes 2..4` (issue 10)
# service mode books against this instant, so the run does not depend on the real clock.
FIXED_NOW = datetime(2031, 3, 3, 6, 0, tzinfo=UTC)
ZONES = [
    "Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
    "America/Los_Angeles", "Europe/Berlin", "Asia/Kolkata", "America/Sao_Paulo",
    "Africa/Nairobi", "Pacific/Auckland",
]
PG_SCHEMES = ("postgres://", "postgresql://", "pgsql://", "postgis://")
SLOT_WINDOW = timedelta(days=14)  # slots are sampled from the first two weeks after "now"
EMAIL_DOMAIN = "race.bench.example"
HOST = "127.0.0.1"  # the http mode never listens anywhere else


# --- plumbing ---------------------------------------------------------------------------


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(root: int) -> list[int]:
    """``root`` and every live process below it (serve --processes: arbiter + web)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == pid]
        tree += kids
        frontier += kids
    return tree


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a local process has used so far; None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> float | None:
    """CPU seconds all processes of the machine have used so far (Linux /proc/stat)."""
    try:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = v
    return (user + nice + system + irq + softirq) / _TICK


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _url_with_db(url: str, name: str) -> str:
    """The same PostgreSQL URL pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _use_database(name: str) -> None:
    """Point Django's default connection at another database (as Django's test runner does)."""
    from django.db import connections

    connections.close_all()
    connections["default"].settings_dict["NAME"] = name


class Databases:
    """A migrated, filled template database and one fresh clone per repetition."""

    def __init__(self, vendor: str, base_url: str, scratch: Path) -> None:
        from django.db import connections

        self.vendor = vendor
        self.base_url = base_url
        base = connections["default"].settings_dict
        self.admin_params = {k: v for k, v in {
            "dbname": base["NAME"], "host": base["HOST"], "port": base["PORT"],
            "user": base["USER"], "password": base["PASSWORD"],
            **base.get("OPTIONS", {})}.items()
            if v and k not in ("isolation_level", "server_side_binding", "pool", "assume_role")}
        self.scratch = scratch
        self.prefix = f"cg_race_{os.getpid()}"
        self.created: list[str] = []
        self.template = self._name("tpl")

    def _name(self, suffix: str) -> str:
        if self.vendor == "postgresql":
            return f"{self.prefix}_{suffix}"
        return str(self.scratch / f"{self.prefix}_{suffix}.sqlite3")

    def _pg_admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(autocommit=True, **self.admin_params) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_template(self) -> None:
        if self.vendor == "postgresql":
            self._pg_admin(f'CREATE DATABASE "{self.template}"')
        self.created.append(self.template)
        _use_database(self.template)

    def clone(self, suffix: str) -> str:
        """A fresh copy of the template; Django is switched to it. Returns its NAME."""
        from django.db import connections

        name = self._name(suffix)
        connections.close_all()  # CREATE DATABASE ... TEMPLATE needs the template idle
        if self.vendor == "postgresql":
            self._pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        else:
            with contextlib.closing(sqlite3.connect(self.template)) as src, \
                    contextlib.closing(sqlite3.connect(name)) as dst:
                src.backup(dst)
        self.created.append(name)
        _use_database(name)
        return name

    def backend_pids(self, name: str) -> list[int]:
        """PostgreSQL server processes serving database ``name`` (none on SQLite)."""
        if self.vendor != "postgresql":
            return []
        import psycopg

        with psycopg.connect(autocommit=True, **self.admin_params) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                (name,)).fetchall()
        return [int(r[0]) for r in rows]

    def url_of(self, name: str) -> str:
        if self.vendor == "postgresql":
            return _url_with_db(self.base_url, name)
        return f"sqlite:///{name}"

    def drop_all(self) -> None:
        from django.db import connections

        connections.close_all()
        if self.vendor != "postgresql":
            return  # files live in the scratch dir, removed with it
        for name in reversed(self.created):
            with contextlib.suppress(Exception):
                self._pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- data -------------------------------------------------------------------------------


@dataclass
class Fixture:
    student_ids: list[int]
    tokens: list[str]  # tokens[i] belongs to student_ids[i]
    offer_ids: list[int]
    # (offer_id, start) per mode: "service" (fixed now) and "http" (real now)
    slots: dict[str, list[tuple[int, datetime]]] = field(default_factory=dict)


def build_fixture(args: argparse.Namespace, modes: list[str]) -> Fixture:
    """Migrate the current (template) database and fill it through the services."""
    from django.core.management import call_command

    from coachgate.accounts import services as accounts
    from coachgate.catalog import services as catalog
    from coachgate.kit import clock
    from coachgate.scheduling import services as scheduling

    call_command("migrate", interactive=False, verbosity=0)
    # No passwords: nobody logs in, and PBKDF2 would dominate the setup time.
    admin = accounts.create_user(email=f"admin@{EMAIL_DOMAIN}", password=None, role="admin")
    offers = []
    for i in range(args.coaches):
        tz = ZONES[i % len(ZONES)]
        user = accounts.create_user(email=f"coach{i:02d}@{EMAIL_DOMAIN}", password=None,
                                    timezone=tz)
        app = accounts.apply_as_coach(user, display_name=f"Coach {i:02d}", bio="bench",
                                      specialties=["bench"], timezone=tz)
        catalog.approve_application(admin, app.pk)
        user.refresh_from_db()
        scheduling.set_weekly_availability(
            user, [scheduling.RuleInput(d, dtime(8), dtime(20)) for d in range(7)])
        offer = catalog.create_offer(user, {
            "title": f"Race {i:02d}", "price_minor": 5000, "currency": "USD",
            "duration_minutes": 60, "session_type": "video", "delivery": "jitsi",
            "min_notice_minutes": 0, "horizon_days": 730,
        })
        offers.append(catalog.set_offer_status(user, offer.pk, "published"))
    students = [accounts.create_user(email=f"student{i:03d}@{EMAIL_DOMAIN}", password=None)
                for i in range(args.students)]
    tokens = [accounts.issue_token(s, "bench").raw for s in students]

    fixture = Fixture([s.pk for s in students], tokens, [o.pk for o in offers])
    for mode in modes:
        # http: the server reads the real clock; start a day ahead so every slot stays
        # comfortably in the future for the whole run.
        now = FIXED_NOW if mode == "service" else clock.now()
        start = now + timedelta(days=1)
        picked: list[tuple[int, datetime]] = []
        for k, offer in enumerate(offers):
            slots = scheduling.list_slots(None, offer, start=start, end=start + SLOT_WINDOW,
                                          now=now)
            if len(slots) < args.slots_per_coach:
                raise SystemExit(f"offer {offer.pk} has only {len(slots)} slots in the window, "
                                 f"need {args.slots_per_coach}")
            rng = random.Random(args.seed * 1000 + k)
            picked += [(offer.pk, s.start)
                       for s in sorted(rng.sample(slots, args.slots_per_coach),
                                       key=lambda s: s.start)]
        fixture.slots[mode] = picked
    return fixture


def plan_work(slots: list[tuple[int, datetime]], clients: int, copies: tuple[int, int],
              seed: int) -> list[list[tuple[int, datetime]]]:
    """Each slot goes to k (copies range) distinct clients at about the same queue position,
    so the duplicates really race. Queues stay balanced (least loaded first)."""
    rng = random.Random(seed)
    order = list(slots)
    rng.shuffle(order)
    queues: list[list[tuple[int, datetime]]] = [[] for _ in range(clients)]
    for item in order:
        k = min(clients, rng.randint(*copies))
        chosen = sorted(range(clients), key=lambda c: (len(queues[c]), rng.random()))[:k]
        for c in chosen:
            queues[c].append(item)
    return queues


# --- clients ----------------------------------------------------------------------------


@dataclass
class ClientSpec:
    index: int
    mode: str
    start_method: str
    db_name: str
    # (student index into the fixture, offer_id, start as ISO string)
    work: list[tuple[int, int, str]]
    student_ids: list[int]
    tokens: list[str]
    base_url: str = ""
    barrier_timeout: float = 120.0
    request_timeout: float = 30.0
    profile_path: str = ""
    threaded: bool = False  # one of several client threads in a process (own connection)
    http_client: str = "stdlib"  # http mode: "stdlib" (http.client) or "httpx"


def _book_via_service(spec: ClientSpec, barrier: Any) -> dict[str, Any]:
    from django.db import connections

    from coachgate.accounts.models import User
    from coachgate.kit.errors import CoachgateError
    from coachgate.scheduling import services

    connections["default"].settings_dict["NAME"] = spec.db_name
    by_pk = User.objects.in_bulk(spec.student_ids)  # also opens the connection
    conn = connections["default"]
    backend = conn.connection.info.backend_pid if conn.vendor == "postgresql" else None
    work = [(by_pk[spec.student_ids[s]], offer_id, datetime.fromisoformat(start))
            for s, offer_id, start in spec.work]
    outcomes: Counter[str] = Counter()
    crashes: list[str] = []
    latencies: list[float] = []
    profiler = cProfile.Profile() if spec.profile_path else None
    barrier.wait(timeout=spec.barrier_timeout)
    cpu_clock = time.thread_time if spec.threaded else time.process_time
    released, cpu0 = time.monotonic(), cpu_clock()
    db0 = proc_cpu(backend) if backend else None
    if profiler:
        profiler.enable()
    for student, offer_id, start in work:
        t0 = time.perf_counter()
        try:
            services.book_session(student, offer_id, start, now=FIXED_NOW)
            code = "won"
        except CoachgateError as exc:
            code = exc.code
        except Exception as exc:  # anything else is a bug the bench must show
            code = "crash"
            if len(crashes) < 3:
                crashes.append("".join(traceback.format_exception_only(exc)).strip()
                               + " @ " + traceback.format_tb(exc.__traceback__)[-1].strip())
        latencies.append(time.perf_counter() - t0)
        outcomes[code] += 1
    finished, cpu = time.monotonic(), cpu_clock() - cpu0
    db1 = proc_cpu(backend) if backend else None
    if profiler:
        profiler.disable()
        profiler.dump_stats(spec.profile_path)
    return {"released": released, "finished": finished, "cpu": cpu,
            "db_cpu": None if db0 is None or db1 is None else db1 - db0,
            "outcomes": dict(outcomes),
            "crashes": crashes, "latencies": latencies}


class _StdlibHttp:
    """The load generator's HTTP client: one keep-alive connection (http.client), JSON in
    and out. About a quarter of httpx's CPU per request; on two cores every millisecond the
    clients spend is taken from the server being measured (``--http-client httpx`` keeps
    the old client for comparison)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        import http.client

        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname or HOST, parts.port,
                                                timeout=timeout)

    def request(self, method: str, path: str, token: str,
                body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        import json

        headers = {"Authorization": f"Bearer {token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self._conn.request(method, path, body=payload, headers=headers)
        r = self._conn.getresponse()
        return r.status, r.read()

    def close(self) -> None:
        self._conn.close()


class _HttpxHttp:
    def __init__(self, base_url: str, timeout: float) -> None:
        import logging

        import httpx

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
        self._client = httpx.Client(base_url=base_url, timeout=timeout)

    def request(self, method: str, path: str, token: str,
                body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        r = self._client.request(method, path, json=body,
                                 headers={"Authorization": f"Bearer {token}"})
        return r.status_code, r.content

    def close(self) -> None:
        self._client.close()


def _book_via_http(spec: ClientSpec, barrier: Any) -> dict[str, Any]:
    import json

    outcomes: Counter[str] = Counter()
    crashes: list[str] = []
    latencies: list[float] = []
    http = (_HttpxHttp if spec.http_client == "httpx" else _StdlibHttp)(
        spec.base_url, spec.request_timeout)
    try:
        # Warm up outside the timed part: the keep-alive connection, and each token once
        # (the first use of a token records last_used_at).
        for s in sorted({s for s, _, _ in spec.work}):
            status, _ = http.request("GET", "/api/v1/me", spec.tokens[s])
            if status != 200:
                raise RuntimeError(f"GET /api/v1/me answered {status}")
        barrier.wait(timeout=spec.barrier_timeout)
        cpu_clock = time.thread_time if spec.threaded else time.process_time
        released, cpu0 = time.monotonic(), cpu_clock()
        for s, offer_id, start in spec.work:
            t0 = time.perf_counter()
            try:
                status, content = http.request("POST", "/api/v1/bookings", spec.tokens[s],
                                               {"offer_id": offer_id, "start": start})
                if status == 201:
                    code = "won"
                elif status >= 500:
                    code = "crash"
                    if len(crashes) < 3:
                        crashes.append(f"HTTP {status}: {content[:200]!r}")
                else:
                    code = str(json.loads(content).get("code", f"http_{status}"))
            except Exception as exc:  # transport errors, bad JSON: a crash either way
                code = "crash"
                if len(crashes) < 3:
                    crashes.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - t0)
            outcomes[code] += 1
        finished, cpu = time.monotonic(), cpu_clock() - cpu0
    finally:
        http.close()
    return {"released": released, "finished": finished, "cpu": cpu, "outcomes": dict(outcomes),
            "crashes": crashes, "latencies": latencies}


def client_main(spec: ClientSpec, barrier: Any, results: Any) -> None:
    """Entry point of one client process. Always reports, even when it fails."""
    report: dict[str, Any] = {"client": spec.index}
    try:
        if spec.mode == "service" and spec.start_method != "fork" and not spec.threaded:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
            import django

            django.setup()
        if spec.mode == "service":
            report |= _book_via_service(spec, barrier)
        else:
            report |= _book_via_http(spec, barrier)
    except BaseException:
        report["fatal"] = traceback.format_exc(limit=8)
        barrier.abort()  # release everyone else at once instead of at the timeout
    finally:
        if spec.mode == "service":
            from django.db import connections

            with contextlib.suppress(Exception):
                connections.close_all()
        results.put(report)


def group_main(specs: list[ClientSpec], barrier: Any, results: Any) -> None:
    """One process running several clients as threads, each on its own DB connection
    (how a web server with worker processes x threads serves concurrent clients)."""
    if specs and specs[0].mode == "service" and specs[0].start_method != "fork":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
        import django

        django.setup()
    if specs and specs[0].mode == "service":
        # These processes stand for coachgate's web processes: set up as `coachgate serve`
        # sets up its own (kit.runtime: garbage collection tuned for serving).
        from coachgate.kit.runtime import tune_for_serving

        tune_for_serving()
    threads = [threading.Thread(target=client_main, args=(spec, barrier, results))
               for spec in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# --- the http server --------------------------------------------------------------------


@contextlib.contextmanager
def http_server(database_url: str, threads: int, scratch: Path, processes: int = 1) -> Any:
    """`coachgate serve` on 127.0.0.1 with a free port; yields (base URL, log, process)."""
    import httpx

    port = _free_port()
    exe = Path(sys.executable).with_name("coachgate")
    cmd = [str(exe), "serve", "--host", HOST, "--port", str(port), "--threads", str(threads),
           "--no-migrate", "--processes", str(processes)]
    env = {**os.environ, "DATABASE_URL": database_url, "COACHGATE_LOG_LEVEL": "WARNING"}
    log_path = scratch / f"server-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    base = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n"
                                   f"{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after 30 s:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base, log_path, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- one repetition ---------------------------------------------------------------------


@dataclass
class RepResult:
    elapsed: float = 0.0
    attempts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    fatal: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    # CPU seconds between release and finish: client processes; their database backends
    # (service mode) or the server's (http); the server process; the whole machine.
    client_cpu: float = 0.0
    db_cpu: float | None = None
    server_cpu: float | None = None
    machine_cpu: float | None = None
    window: float = 0.0  # wall seconds over which machine_cpu was measured
    sessions: int = 0
    bookings: int = 0
    events: int = 0
    unexpected_sessions: int = 0
    overlaps_service: int = -1
    overlaps_sql: int = -1
    problems: list[str] = field(default_factory=list)

    @property
    def wins(self) -> int:
        return self.outcomes.get("won", 0)

    @property
    def bookings_per_s(self) -> float:
        return self.wins / self.elapsed if self.elapsed else 0.0

    @property
    def attempts_per_s(self) -> float:
        return self.attempts / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_ms_per_attempt(self) -> float:
        """Client-process CPU per attempt (ms); the database's CPU is not in it."""
        return self.client_cpu * 1000.0 / self.attempts if self.attempts else 0.0

    def cpu_line(self) -> str:
        """Where the CPU went, per attempt, and how busy the machine was meanwhile."""
        def per(x: float | None) -> str:
            return "n/a" if x is None else f"{x * 1000.0 / max(1, self.attempts):.2f} ms"

        text = f"cpu per attempt: clients {per(self.client_cpu)}, database {per(self.db_cpu)}"
        if self.server_cpu is not None:
            text += f", server {per(self.server_cpu)}"
        if self.machine_cpu is not None and self.window > 0:
            ncpu = os.cpu_count() or 1
            ours = self.client_cpu + (self.db_cpu or 0.0) + (self.server_cpu or 0.0)
            other = max(0.0, self.machine_cpu - ours)
            text += (f"; machine busy {100 * self.machine_cpu / (self.window * ncpu):.0f}% of "
                     f"{ncpu} CPUs, other processes ~{100 * other / (self.window * ncpu):.0f}%")
        return text

    def latency_ms(self, q: float) -> float:
        return _percentile(sorted(self.latencies), q) * 1000.0


def run_clients(args: argparse.Namespace, mode: str, db_name: str, base_url: str,
                fixture: Fixture, queues: list[list[tuple[int, datetime]]],
                profile_path: str,
                server_probe: Callable[[], dict[str, dict[int, float]]] | None = None,
                ) -> RepResult:
    from django.db import connections

    ctx = mp.get_context(args.start_method)
    connections.close_all()  # a forked client must not share the parent's connection
    barrier = ctx.Barrier(args.clients + 1)
    results = ctx.Queue()
    procs = []
    groups = args.client_processes or args.clients
    grouped: list[list[ClientSpec]] = [[] for _ in range(min(groups, len(queues)))]
    for c, items in enumerate(queues):
        work = [((c + args.clients * (j % 2)) % len(fixture.student_ids), offer_id,
                 start.isoformat()) for j, (offer_id, start) in enumerate(items)]
        spec = ClientSpec(index=c, mode=mode, start_method=args.start_method, db_name=db_name,
                          work=work, student_ids=fixture.student_ids, tokens=fixture.tokens,
                          base_url=base_url, barrier_timeout=args.timeout,
                          profile_path=profile_path if c == 0 else "",
                          threaded=groups < args.clients, http_client=args.http_client)
        grouped[c % len(grouped)].append(spec)
    for specs in grouped:
        if len(specs) == 1 and not specs[0].threaded:
            p = ctx.Process(target=client_main, args=(specs[0], barrier, results), daemon=True)
        else:
            p = ctx.Process(target=group_main, args=(specs, barrier, results), daemon=True)
        p.start()
        procs.append(p)

    res = RepResult(attempts=sum(len(q) for q in queues))
    # Release once every client is ready, with CPU counters read just before.
    deadline = time.monotonic() + args.timeout
    while (barrier.n_waiting < args.clients and not barrier.broken
           and time.monotonic() < deadline and any(p.is_alive() for p in procs)):
        time.sleep(0.01)
    probe0 = server_probe() if server_probe else {}
    machine0, t0 = machine_busy(), time.monotonic()
    with contextlib.suppress(Exception):
        barrier.wait(timeout=args.timeout)  # a broken barrier shows up as client fatals
    reports: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + args.timeout
    while len(reports) < len(queues) and time.monotonic() < deadline:
        try:
            r = results.get(timeout=0.5)
            reports[r["client"]] = r
        except queue.Empty:
            if all(not p.is_alive() for p in procs):
                time.sleep(0.5)  # let the last reports drain
                with contextlib.suppress(queue.Empty):
                    while True:
                        r = results.get_nowait()
                        reports[r["client"]] = r
                break
    machine1, res.window = machine_busy(), time.monotonic() - t0
    if machine0 is not None and machine1 is not None:
        res.machine_cpu = machine1 - machine0
    if server_probe:
        probe1 = server_probe()
        for kind in ("server", "db"):
            before, after = probe0.get(kind, {}), probe1.get(kind, {})
            spent = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
            if kind == "server":
                res.server_cpu = spent if after else None
            else:
                res.db_cpu = spent if after else None
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()  # only our own client processes
            p.join(timeout=5)
    for i in range(len(queues)):
        if i not in reports:
            res.fatal.append(f"client {i}: no report within --timeout {args.timeout:.0f} s")
    released, finished = [], []
    for i, r in sorted(reports.items()):
        if "fatal" in r:
            res.fatal.append(f"client {i}: {r['fatal']}")
            continue
        released.append(r["released"])
        finished.append(r["finished"])
        res.outcomes.update(r["outcomes"])
        res.crashes += r["crashes"]
        res.latencies += r["latencies"]
        res.client_cpu += r["cpu"]
        if r.get("db_cpu") is not None:
            res.db_cpu = (res.db_cpu or 0.0) + r["db_cpu"]
    if released:
        res.elapsed = max(finished) - min(released)
    return res


def overlap_sql(vendor: str) -> str:
    """Independent of services.count_overlapping_sessions: ranges on PostgreSQL, julianday
    on SQLite; live = not cancelled."""
    if vendor == "postgresql":
        return ("SELECT COUNT(*) FROM scheduling_session a JOIN scheduling_session b"
                " ON b.coach_id = a.coach_id AND b.id > a.id"
                " WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'"
                " AND tstzrange(a.starts_at, a.ends_at, '[)')"
                " && tstzrange(b.starts_at, b.ends_at, '[)')")
    return ("SELECT COUNT(*) FROM scheduling_session a JOIN scheduling_session b"
            " ON b.coach_id = a.coach_id AND b.id > a.id"
            " WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'"
            " AND julianday(a.starts_at) < julianday(b.ends_at)"
            " AND julianday(b.starts_at) < julianday(a.ends_at)")


def verify(res: RepResult, vendor: str, slots: list[tuple[int, datetime]]) -> None:
    """Count what the race left behind and record every broken expectation."""
    from django.db import connection

    from coachgate.scheduling import services
    from coachgate.scheduling.models import Booking, Session, SessionEvent

    res.sessions = Session.objects.count()
    res.bookings = Booking.objects.count()
    res.events = SessionEvent.objects.count()
    wanted = set(slots)
    got = list(Session.objects.values_list("offer_id", "starts_at"))
    res.unexpected_sessions = sum(1 for item in got if item not in wanted)
    res.overlaps_service = services.count_overlapping_sessions()
    with connection.cursor() as cur:
        cur.execute(overlap_sql(vendor))
        res.overlaps_sql = int(cur.fetchone()[0])

    n = len(slots)
    p = res.problems
    if res.fatal:
        p.append(f"{len(res.fatal)} client(s) failed")
    if res.crashes or res.outcomes.get("crash"):
        p.append(f"{res.outcomes.get('crash', 0)} crashed attempt(s)")
    if res.sessions != n:
        p.append(f"sessions {res.sessions} != {n} distinct slots")
    if res.wins != n:
        p.append(f"wins {res.wins} != {n}")
    if res.bookings != res.wins or res.events != res.wins:
        p.append(f"bookings {res.bookings} / events {res.events} != wins {res.wins}")
    if res.unexpected_sessions:
        p.append(f"{res.unexpected_sessions} session(s) at slots nobody asked for")
    if len(set(got)) != len(got):
        p.append("two sessions for one (offer, start)")
    if res.overlaps_service or res.overlaps_sql:
        p.append(f"overlaps: service {res.overlaps_service}, sql {res.overlaps_sql}")
    other = {k: v for k, v in res.outcomes.items() if k not in ("won", "slot_taken", "crash")}
    if other:
        p.append(f"unexpected outcomes {other}")
    if sum(res.outcomes.values()) != res.attempts and not res.fatal:
        p.append(f"{sum(res.outcomes.values())} outcomes for {res.attempts} attempts")


# --- reporting --------------------------------------------------------------------------


def db_info() -> dict[str, str]:
    from django.db import connection

    info = {"vendor": connection.vendor}
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            for key in ("server_version", "fsync", "synchronous_commit", "full_page_writes",
                        "max_connections"):
                cur.execute(f"SHOW {key}")
                info[key] = str(cur.fetchone()[0])
        else:
            cur.execute("SELECT sqlite_version()")
            info["server_version"] = str(cur.fetchone()[0])
            for key in ("journal_mode", "synchronous"):
                cur.execute(f"PRAGMA {key}")
                info[key] = str(cur.fetchone()[0])
    return info


def source_fingerprint() -> str:
    """Short hash of the coachgate sources measured (they change between commits)."""
    import hashlib

    import coachgate

    root = Path(coachgate.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def reproduce_command(info: dict[str, str], argv: list[str]) -> str:
    rest = " ".join(shlex.quote(a) for a in argv)
    script = "bench/bench_booking_race.py"
    if info["vendor"] != "postgresql":
        return f"cd <repo root> && .venv/bin/python {script} {rest}".rstrip()
    if info.get("fsync") == "on":
        return ("cd <repo root> && python3 scripts/pgcluster.py run --durable -- "
                f".venv/bin/python {script} {rest}").rstrip()
    return f"cd <repo root> && ./run bench bench_booking_race {rest}".rstrip()


HEADER = (f"{'rep':>4} {'elapsed_s':>9} {'attempts':>8} {'wins':>5} {'409s':>5} {'other':>5} "
          f"{'crash':>5} {'book/s':>7} {'att/s':>7} {'p50_ms':>7} {'p95_ms':>7} {'sessions':>8} "
          f"{'ovl_svc':>7} {'ovl_sql':>7} {'cli_cpu':>7}  check")


def row(label: str, r: RepResult) -> str:
    other = sum(v for k, v in r.outcomes.items() if k not in ("won", "slot_taken", "crash"))
    return (f"{label:>4} {r.elapsed:9.3f} {r.attempts:8d} {r.wins:5d} "
            f"{r.outcomes.get('slot_taken', 0):5d} {other:5d} {r.outcomes.get('crash', 0):5d} "
            f"{r.bookings_per_s:7.1f} {r.attempts_per_s:7.1f} {r.latency_ms(0.5):7.1f} "
            f"{r.latency_ms(0.95):7.1f} {r.sessions:8d} {r.overlaps_service:7d} "
            f"{r.overlaps_sql:7d} {r.cpu_ms_per_attempt:7.2f}  "
            f"{'ok' if not r.problems else 'FAIL'}")


def print_profile(path: str, top: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print("--- cProfile of client 0 (cumulative, then own time) ---")
    print(out.getvalue())


def run_mode(args: argparse.Namespace, mode: str, dbs: Databases, fixture: Fixture,
             scratch: Path) -> tuple[list[RepResult], bool]:
    slots = fixture.slots[mode]
    queues = plan_work(slots, args.clients, (args.copies_min, args.copies_max), args.seed)
    attempts = sum(len(q) for q in queues)
    print(f"\n== mode {mode}: {len(slots)} distinct slots ({args.coaches} coaches x "
          f"{args.slots_per_coach}), {attempts} attempts ({args.copies_min}-{args.copies_max} "
          f"per slot, different clients), {args.clients} clients in "
          f"{args.client_processes or args.clients} processes "
          f"({args.start_method}), {args.repeat} repetition(s), fresh database each ==")
    if mode == "http":
        print(f"   server: coachgate serve --processes {args.processes} "
              f"({'waitress' if args.processes == 1 else 'gunicorn gthread'}) on {HOST}, "
              f"--threads {args.threads}; "
              f"clients: {'http.client' if args.http_client == 'stdlib' else 'httpx'}, "
              "keep-alive, Bearer tokens")
    else:
        print(f"   clients call scheduling.services.book_session(now={FIXED_NOW.isoformat()})")
    print(HEADER, flush=True)
    results: list[RepResult] = []
    for rep in range(1, args.repeat + 1):
        name = dbs.clone(f"{mode}_r{rep}")
        profile_path = str(scratch / f"client0-{mode}-{rep}.prof") if (
            args.profile and rep == 1 and mode == "service") else ""
        if mode == "http":
            with http_server(dbs.url_of(name), args.threads, scratch,
                             args.processes) as (base_url, log_path, server):
                def probe(pid: int = server.pid, db: str = name) -> dict[str, dict[int, float]]:
                    found = {"server": {p: proc_cpu(p) for p in process_tree(pid)},
                             "db": {b: proc_cpu(b) for b in dbs.backend_pids(db)}}
                    return {k: {p: c for p, c in v.items() if c is not None}
                            for k, v in found.items()}

                res = run_clients(args, mode, name, base_url, fixture, queues, profile_path,
                                  probe)
            server_log = log_path.read_text(errors="replace").strip()
        else:
            res = run_clients(args, mode, name, "", fixture, queues, profile_path)
            server_log = ""
        _use_database(name)
        verify(res, dbs.vendor, slots)
        results.append(res)
        print(row(str(rep), res), flush=True)
        print(f"     {res.cpu_line()}")
        for problem in res.problems:
            print(f"     problem: {problem}")
        for text in (res.crashes + res.fatal)[:5]:
            print("     " + text.replace("\n", "\n     "))
        if res.problems and server_log:
            print("     server log (tail):\n     " + server_log[-1500:].replace("\n", "\n     "))
        if profile_path and os.path.exists(profile_path):
            print_profile(profile_path, args.profile)

    med = RepResult(
        elapsed=statistics.median(r.elapsed for r in results),
        attempts=attempts,
        outcomes=Counter({"won": int(statistics.median(r.wins for r in results)),
                          "slot_taken": int(statistics.median(
                              r.outcomes.get("slot_taken", 0) for r in results))}),
        sessions=int(statistics.median(r.sessions for r in results)),
        overlaps_service=max(r.overlaps_service for r in results),
        overlaps_sql=max(r.overlaps_sql for r in results),
    )
    bps = statistics.median(r.bookings_per_s for r in results)
    aps = statistics.median(r.attempts_per_s for r in results)
    p50 = statistics.median(r.latency_ms(0.5) for r in results)
    p95 = statistics.median(r.latency_ms(0.95) for r in results)
    cpu = statistics.median(r.cpu_ms_per_attempt for r in results)
    correct = all(not r.problems for r in results)
    target = TARGET_HTTP_BOOKINGS_PER_S if mode == "http" else TARGET_BOOKINGS_PER_S
    fast = bps >= target
    print(f"{'med':>4} {med.elapsed:9.3f} {attempts:8d} {med.wins:5d} "
          f"{med.outcomes['slot_taken']:5d} {'':>5} {'':>5} {bps:7.1f} {aps:7.1f} {p50:7.1f} "
          f"{p95:7.1f} {med.sessions:8d} {med.overlaps_service:7d} {med.overlaps_sql:7d} "
          f"{cpu:7.2f}  "
          "(median of reps; overlaps: max)")
    print(f"mode {mode}: median {bps:.1f} bookings/s (target >= {target:.0f}): "
          f"{'PASS' if fast else 'FAIL'}; overlaps 0 and {len(slots)} sessions in every "
          f"repetition: {'PASS' if correct else 'FAIL'}")
    layout = (f"serve --processes {args.processes} x {args.threads} threads" if mode == "http"
              else f"{args.client_processes or args.clients} processes")
    served = [r.server_cpu * 1000 / attempts for r in results if r.server_cpu is not None]
    size = (f"{args.clients} clients, {layout}, {attempts} attempts, median of {len(results)}; "
            + (f"server CPU {statistics.median(served):.2f} ms/attempt, " if served else "")
            + f"client CPU {cpu:.2f} ms/attempt")
    report(f"booking race, {mode}, {dbs.vendor}: bookings/s", round(bps, 1), "bookings/s",
           target, "min", note=size)
    report(f"booking race, {mode}, {dbs.vendor}: problems (overlaps, sessions != slots, "
           "crashes)", sum(len(r.problems) for r in results), "", 0, "eq", note=size)
    return results, correct and fast


# --- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["service", "http", "both"], default="service",
                   help="./run bench (every script) passes --mode both")
    p.add_argument("--repeat", type=int, default=3, help="repetitions, fresh database each")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--coaches", type=int, default=10)
    p.add_argument("--slots-per-coach", type=int, default=50)
    p.add_argument("--students", type=int, default=64)
    p.add_argument("--copies-min", type=int, default=2, help="attempts per slot, at least")
    p.add_argument("--copies-max", type=int, default=3, help="attempts per slot, at most")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=16, help="server threads (http mode)")
    p.add_argument("--http-client", choices=["stdlib", "httpx"], default="stdlib",
                   help="http mode: the clients' HTTP library (default stdlib: http.client, "
                        "the cheaper load generator on a machine shared with the server)")
    p.add_argument("--processes", type=int, default=2, metavar="N",
                   help="http mode: `coachgate serve --processes N` (1: one waitress process, "
                        "the earlier layout; default 2)")
    p.add_argument("--quick", action="store_true",
                   help="one repetition (unless --repeat is given); ./run bench --quick")
    p.add_argument("--timeout", type=float, default=90.0,
                   help="seconds a repetition's clients may take before they are stopped")
    p.add_argument("--start-method", choices=["fork", "spawn", "forkserver"], default="fork",
                   help="multiprocessing start method of the clients (fork happens only "
                        "after all database connections are closed)")
    p.add_argument("--client-processes", type=int, default=4, metavar="P",
                   help="run the clients as threads in P processes, each thread with its own "
                        "database connection, as a server with P worker processes would "
                        "serve them (default 4); 0 = one process per client")
    p.add_argument("--profile", type=int, nargs="?", const=30, default=0, metavar="TOP",
                   help="cProfile client 0 in the first service repetition; print TOP rows")
    p.add_argument("--allow-sqlite", action="store_true",
                   help="without a PostgreSQL DATABASE_URL, race on a scratch SQLite file")
    args = p.parse_args(argv)
    if args.quick and args.repeat == p.get_default("repeat"):
        args.repeat = 1
    if args.clients < 1 or args.repeat < 1 or args.coaches < 1 or args.slots_per_coach < 1:
        p.error("--clients, --repeat, --coaches and --slots-per-coach must be at least 1")
    if not 1 <= args.copies_min <= args.copies_max:
        p.error("need 1 <= --copies-min <= --copies-max")
    if args.students < args.clients:
        p.error("--students must be at least --clients (duplicates use different students)")
    return args


def main(argv: list[str] | None = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    url = os.environ.get("DATABASE_URL", "")
    is_pg = url.startswith(PG_SCHEMES)
    if not is_pg and not args.allow_sqlite:
        print("bench_booking_race: refusing to run: DATABASE_URL is not a PostgreSQL URL "
              f"({'unset' if not url else url.split(':', 1)[0] + ':...'}).\n"
              "  Run it in a throwaway cluster:  ./run bench bench_booking_race\n"
              "  or compare on SQLite:           .venv/bin/python bench/bench_booking_race.py "
              "--allow-sqlite", file=sys.stderr)
        return 2
    modes = ["service", "http"] if args.mode == "both" else [args.mode]
    scratch = Path(tempfile.mkdtemp(prefix="coachgate-race-"))
    try:
        os.environ.setdefault("COACHGATE_DATA_DIR", str(scratch / "data"))
        os.environ.setdefault("COACHGATE_SECRET_KEY", "bench-only-not-secret")
        if not is_pg:  # never touch an existing SQLite file: race on scratch copies
            url = f"sqlite:///{scratch / 'base.sqlite3'}"
            os.environ["DATABASE_URL"] = url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
        import logging

        import django

        django.setup()
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
        dbs = Databases("postgresql" if is_pg else "sqlite", url, scratch)
        try:
            return _run(args, raw_argv, modes, dbs, scratch)
        finally:
            dbs.drop_all()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, raw_argv: list[str], modes: list[str], dbs: Databases,
         scratch: Path) -> int:
    t0 = time.monotonic()
    dbs.create_template()
    info = db_info()
    fixture = build_fixture(args, modes)
    setup_s = time.monotonic() - t0

    print("bench_booking_race: " + __doc__.splitlines()[0])
    print(f"reproduce: {reproduce_command(info, raw_argv)}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), "
          f"database {info['vendor']} {info['server_version']}; load average before: "
          + " ".join(f"{x:.2f}" for x in os.getloadavg())
          + f"; coachgate sources sha256 {source_fingerprint()}")
    if info["vendor"] == "postgresql":
        durable = info["fsync"] == "on" and info["synchronous_commit"] == "on"
        print(f"durability: fsync={info['fsync']} synchronous_commit={info['synchronous_commit']}"
              f" full_page_writes={info['full_page_writes']} -> "
              f"{'DURABLE' if durable else 'NOT durable (throwaway settings)'}; "
              f"max_connections={info['max_connections']}")
    else:
        print(f"durability: SQLite journal_mode={info['journal_mode']} "
              f"synchronous={info['synchronous']} (comparison only; the target is for PostgreSQL)")
    print(f"setup: migrate + {args.coaches} coaches (weekly 08:00-20:00 every day in "
          f"{', '.join(ZONES[: min(args.coaches, len(ZONES))])}), one published 60-min 1:1 "
          f"offer each, {args.students} students: {setup_s:.1f} s")

    ok_all, correct_all = True, True
    for mode in modes:
        results, ok = run_mode(args, mode, dbs, fixture, scratch)
        ok_all = ok_all and ok
        correct_all = correct_all and all(not r.problems for r in results)
    print(f"\noverall: {'PASS' if ok_all else 'FAIL'} (target: >= {TARGET_BOOKINGS_PER_S:.0f} "
          f"bookings/s median, 0 overlaps and exactly one session per slot, always)")
    if not correct_all:
        return 1
    return 0 if ok_all else 3


if __name__ == "__main__":
    raise SystemExit(main())
