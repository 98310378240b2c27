"""The `coachgate` command: serve, worker, migrate, demo, check, reconcile, emulator, user,
token, manage."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coachgate.kit.config import conf
from coachgate.kit.runtime import load_lazy_modules, tune_for_serving

if TYPE_CHECKING:
    from coachgate.kit.worker import GateWorker


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as exc:  # e.g. production mode with DEBUG on: say why, stop
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from coachgate.kit.config import unknown_variables

    for line in unknown_variables():  # usually a typo: say so before anything runs
        logging.getLogger("coachgate.config").warning("%s", line)


def _migrate(verbosity: int = 1) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)
    _cache_table(verbosity)


def _cache_table(verbosity: int = 0) -> None:
    """The database cache (allauth's login rate-limit counters, shared by every process)
    lives in a table that migrations do not make; a no-op once it exists. Web processes
    started together may race to create it: the loser finds it made."""
    from django.core.management import CommandError, call_command

    try:
        call_command("createcachetable", verbosity=verbosity)
    except CommandError:
        call_command("createcachetable", verbosity=verbosity)  # now it exists: checks only


def _proxy_options() -> dict[str, Any]:
    """waitress's options for the reverse proxy of COACHGATE_TRUSTED_PROXY.

    waitress by default drops every forwarding header before Django sees it, so a request
    relayed by a proxy on this machine looked local (/metrics answered it). Headers are
    kept for Django, which never believes them from anyone but the trusted proxy
    (coachgate.kit.http); from the trusted proxy, waitress puts the client's address in
    REMOTE_ADDR and its scheme (X-Forwarded-Proto) in wsgi.url_scheme."""
    options: dict[str, Any] = {"clear_untrusted_proxy_headers": False}
    proxy = conf().TRUSTED_PROXY
    if proxy:
        options.update(trusted_proxy=proxy,
                       trusted_proxy_count=conf().TRUSTED_PROXY_COUNT,
                       trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"})
    return options


def cmd_serve(args: argparse.Namespace) -> int:
    if getattr(args, "processes", 1) > 1:
        return _serve_processes(args)
    _setup()
    if not args.no_migrate:
        _migrate(verbosity=0)
    else:
        _cache_table()  # logins need it even where another machine runs the migrations
    from waitress import serve

    from coachgate.kit.metrics import count_requests
    from coachgate.wsgi import application

    load_lazy_modules()
    worker = None
    if _embedded_worker(args):
        worker = _make_worker(sweep_interval=None)
        worker.start()
        print("coachgate worker running in-process (embedded default)", flush=True)
    print(f"coachgate listening on http://{args.host}:{args.port}/  (Ctrl-C to stop)", flush=True)
    if worker is None:  # the gate worker's latency suffers from it (kit.runtime)
        tune_for_serving()
    try:
        serve(count_requests(application, "waitress"), host=args.host, port=args.port,
              threads=args.threads, ident="coachgate", **_proxy_options())
    finally:
        if worker is not None:
            worker.stop()
    return 0


def _serve_processes(args: argparse.Namespace) -> int:
    """`serve --processes N`: N web processes (gunicorn, gthread workers) on one socket and,
    where `serve` runs a worker (the embedded default, or --with-worker), one worker
    process beside them, never one per web process.

    gthread rather than sync workers: a sync worker serves one connection at a time and
    closes it after each response, so 32 keep-alive clients would need 32 processes; a
    gthread worker keeps connections alive and its threads wait on the database in
    parallel, as waitress's threads do in the one-process default.

    Every process writes its metrics to one PROMETHEUS_MULTIPROC_DIR, which /metrics sums
    (kit.metrics): the operator's, emptied at start, or a fresh one removed at exit."""
    import shutil
    import tempfile
    from pathlib import Path

    made = ""
    if args.supervised:
        pass  # the supervising `serve` prepared the directory, and the worker writes to it
    elif os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            stale.unlink()  # figures of an earlier run: prometheus_client wants them gone
    else:
        made = tempfile.mkdtemp(prefix="coachgate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = made  # before prometheus_client is imported
    try:
        _setup()
        if not args.no_migrate:
            _migrate(verbosity=0)  # once, before any web process starts
        else:
            _cache_table()
        if not args.supervised and _embedded_worker(args):
            return _supervise(args)
        return _run_gunicorn(args)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)


def _supervise(args: argparse.Namespace) -> int:
    """The worker in its own process beside the web tier's, restarted if it ever exits.

    Not a thread of gunicorn's arbiter: the arbiter forks web processes at any time (one
    that dies is replaced), and a fork taken while a worker thread holds a lock or a
    database connection is unsafe; nor a child of the arbiter, which reaps every child
    and would swallow its exit."""
    import signal
    import subprocess
    import time

    from coachgate.kit.metrics import mark_process_dead

    me = [sys.executable, "-m", "coachgate.cli"]
    web_cmd = [*me, "serve", "--host", args.host, "--port", str(args.port),
               "--threads", str(args.threads), "--processes", str(args.processes),
               "--no-migrate", "--no-worker", "--supervised"]
    worker_cmd = [*me, "worker"]
    stopping: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    web = subprocess.Popen(web_cmd)  # noqa: S603 - our own entry point
    worker = subprocess.Popen(worker_cmd)  # noqa: S603
    print(f"coachgate worker running in its own process (pid {worker.pid}) beside "
          f"{args.processes} web processes", flush=True)
    try:
        while not stopping and web.poll() is None:
            if worker.poll() is not None:
                mark_process_dead(worker.pid)
                print(f"coachgate worker exited ({worker.returncode}); restarting it",
                      file=sys.stderr, flush=True)
                time.sleep(1)
                worker = subprocess.Popen(worker_cmd)  # noqa: S603
            time.sleep(0.2)
    finally:
        for proc in (web, worker):
            if proc.poll() is None:
                proc.terminate()
        for proc in (web, worker):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        mark_process_dead(worker.pid)
    return 0 if stopping else int(web.returncode or 0)


KEEPALIVE_S = 120  # waitress's default channel_timeout


def _run_gunicorn(args: argparse.Namespace) -> int:
    from django.db import connections
    from gunicorn.app.base import BaseApplication

    from coachgate.kit.metrics import count_requests, mark_process_dead
    from coachgate.wsgi import application

    proxy = str(_proxy_options().get("trusted_proxy", "") or "")
    host = f"[{args.host}]" if ":" in args.host else args.host

    def child_exit(_server: object, worker: Any) -> None:
        mark_process_dead(worker.pid)

    options: dict[str, Any] = {
        "bind": [f"{host}:{args.port}"],
        "workers": args.processes,
        "worker_class": "gthread",
        "threads": args.threads,
        # gunicorn closes a keep-alive connection idle for 2 s by default; a client that
        # sends on it just then gets "connection reset" (the booking race lost a POST so).
        # Idle connections cost a gthread worker a socket, not a thread: keep them as long
        # as waitress does in the one-process default (its channel_timeout).
        "keepalive": KEEPALIVE_S,
        "preload_app": True,  # loaded once here; web processes fork with it
        "proc_name": "coachgate",
        "errorlog": "-",
        "loglevel": "info",
        # As with waitress (_proxy_options): the scheme comes from X-Forwarded-Proto only
        # when the trusted proxy sent it; the client address is kit.http's to work out.
        "forwarded_allow_ips": proxy,
        "secure_scheme_headers": {"X-FORWARDED-PROTO": "https"},
        "child_exit": child_exit,
    }

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no types: BaseApplication is Any
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return count_requests(application, "gunicorn")

    load_lazy_modules()
    connections.close_all()  # no connection opened here may be shared by forked processes
    tune_for_serving()  # before the fork: the frozen start-up objects stay shared
    print(f"coachgate listening on http://{args.host}:{args.port}/  ({args.processes} web "
          f"processes x {args.threads} threads; Ctrl-C to stop)", flush=True)
    Server().run()
    return 0


def _embedded_worker(args: argparse.Namespace) -> bool:
    """`serve` runs the worker in-process on SQLite (the embedded default) unless told not
    to; on PostgreSQL run `coachgate worker` processes instead (or pass --with-worker)."""
    from django.conf import settings

    if getattr(args, "no_worker", False):
        return False
    if getattr(args, "with_worker", False):
        return True
    return bool(settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"))


def _make_worker(*, sweep_interval: float | None, poll_interval: float | None = None,
                 sweep: bool = True, tasks: bool = True) -> GateWorker:
    from coachgate.kit.due import worker_identity
    from coachgate.kit.worker import GateWorker

    cfg = conf()
    return GateWorker(
        poll_interval=cfg.WORKER_POLL_INTERVAL if poll_interval is None else poll_interval,
        sweep_interval=cfg.SWEEP_INTERVAL if sweep_interval is None else sweep_interval,
        worker_id=worker_identity(), sweep=sweep, tasks=tasks)


def cmd_worker(args: argparse.Namespace) -> int:
    if args.processes > 1:
        import subprocess

        child = [sys.executable, "-m", "coachgate.cli", "worker", "--processes", "1",
                 *(["--poll", str(args.poll)] if args.poll is not None else []),
                 *(["--sweep-interval", str(args.sweep_interval)]
                   if args.sweep_interval is not None else []),
                 *(["--no-sweep"] if args.no_sweep else []),
                 *(["--sweep-only"] if args.sweep_only else [])]
        procs = [subprocess.Popen(child) for _ in range(args.processes)]  # noqa: S603
        try:
            return max(p.wait() for p in procs)
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            return 0
    _setup()
    worker = _make_worker(sweep_interval=args.sweep_interval, poll_interval=args.poll,
                          sweep=not args.no_sweep, tasks=not args.sweep_only)
    print(f"coachgate worker {worker.worker_id} started", flush=True)
    # No kit.runtime tuning here: measured, the rarer but longer collections made access
    # gates later (gate-lateness p99 0.32 s with it, 0.18 s without).
    worker.run_forever()
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    _setup()
    import json

    from coachgate.kit.periodic import sweep_all

    # Every sweep and every row on its own: a bad row is reported (its sweep's "errors"
    # and "failures", and under "failing" with its next retry), never a crash. Exits 1
    # only when a whole sweep failed.
    report = sweep_all(limit=args.limit, failing=True)
    print(json.dumps(report, indent=2, default=str))
    return 1 if any(isinstance(part, dict) and "error" in part
                    for part in report.values()) else 0


def cmd_check(args: argparse.Namespace) -> int:
    _setup()
    from coachgate.access.check import check_guild

    report = check_guild(mode=args.mode)
    print(report.render())
    return 0 if report.ok else 1


def cmd_emulator(args: argparse.Namespace) -> int:
    from coachgate.integrations.discord.emulator import main as emulator_main

    argv = ["--port", str(args.port), "--guild-name", args.guild_name]
    for name in args.user:
        argv += ["--user", name]
    return int(emulator_main(argv) or 0)


def cmd_migrate(args: argparse.Namespace) -> int:
    _setup()
    _migrate()
    return 0


DEMO_MARKER = "coachgate-demo-data"  # in a data directory the demo started empty
# The Discord OAuth application of the demo's emulator (demo.start_discord registers it).
DEMO_DISCORD_APP = ("coachgate-demo", "coachgate-demo-secret")


def _demo_data_dir() -> Path:
    """The demo's data directory: COACHGATE_DATA_DIR when set, else ./var/demo (beside, not
    inside, a real install's ./var). Resolved as settings.py resolves DATA_DIR."""
    os.environ.setdefault("COACHGATE_DATA_DIR", str(Path.cwd() / "var" / "demo"))
    return Path(os.environ["COACHGATE_DATA_DIR"]).resolve()


def _reset_demo_data(data_dir: Path) -> str | None:
    """Delete the demo's data directory so the demo seeds afresh. Only the embedded SQLite
    database, and only a directory the demo itself started (it holds DEMO_MARKER) or one
    that is empty: anything else answers why not (None: done)."""
    if os.environ.get("DATABASE_URL"):
        return ("--reset starts the embedded SQLite demo afresh; DATABASE_URL is set, so "
                "the demo is not on its own database. Unset it, or empty that database "
                "yourself.")
    if not data_dir.exists():
        return None
    if not data_dir.is_dir():
        return f"{data_dir} is not a directory; not touching it."
    if any(data_dir.iterdir()) and not (data_dir / DEMO_MARKER).is_file():
        return (f"{data_dir} was not started by the demo (no {DEMO_MARKER} file in it); "
                "not deleting it. Point COACHGATE_DATA_DIR at the demo's own directory.")
    import shutil

    shutil.rmtree(data_dir)
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    # The demo's emails (confirmations, reminders, "access is open") go to files.
    os.environ.setdefault("COACHGATE_EMAIL_BACKEND",
                          "django.core.mail.backends.filebased.EmailBackend")
    # allauth's Discord provider reads its OAuth application from these when the settings
    # load; the demo registers the same one in its emulator (demo.start_discord).
    os.environ.setdefault("COACHGATE_DISCORD_CLIENT_ID", DEMO_DISCORD_APP[0])
    os.environ.setdefault("COACHGATE_DISCORD_CLIENT_SECRET", DEMO_DISCORD_APP[1])
    data_dir = _demo_data_dir()
    if args.reset:
        refused = _reset_demo_data(data_dir)
        if refused:
            print(f"error: {refused}", file=sys.stderr)
            return 2
        print(f"demo: deleted {data_dir}; seeding fresh demo data", flush=True)
    fresh = not data_dir.exists() or not any(data_dir.iterdir())
    _setup()
    _migrate(verbosity=0)
    if fresh and not os.environ.get("DATABASE_URL"):
        (data_dir / DEMO_MARKER).write_text(
            "This directory holds coachgate demo data: `coachgate demo --reset` may delete "
            "it.\n")
    import threading

    from coachgate import demo

    emu = demo.start_discord()
    summary = demo.load_demo(base_url=f"http://{args.host}:{args.port}", emu=emu)
    print(summary, flush=True)
    if args.no_serve:
        if not args.lifecycle:
            return 0
        worker = _make_worker(sweep_interval=5)
        worker.start()
        try:
            return 0 if demo.run_lifecycle(emu) else 1
        finally:
            worker.stop()
    if not args.no_lifecycle:
        threading.Thread(target=demo.run_lifecycle, args=(emu,), daemon=True).start()
    return cmd_serve(argparse.Namespace(host=args.host, port=args.port, threads=args.threads,
                                        no_migrate=True, no_worker=False, with_worker=True,
                                        processes=1, supervised=False))


def cmd_user(args: argparse.Namespace) -> int:
    _setup()
    from coachgate.accounts import services
    from coachgate.accounts.models import User
    from coachgate.kit.errors import CoachgateError

    if args.action == "add":
        password = args.password or os.environ.get("COACHGATE_USER_PASSWORD")
        try:
            user = services.create_user(email=args.email, password=password, role=args.role,
                                        display_name=args.name or "",
                                        timezone=args.timezone)
        except CoachgateError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        print(f"created {user.role} {user.email} (id {user.pk})")
        if args.token:
            print(f"token: {services.issue_token(user, 'cli').raw}")
        return 0
    for u in User.objects.order_by("pk"):
        print(f"{u.pk}\t{u.role}\t{u.email}\t{'active' if u.is_active else 'inactive'}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    _setup()
    from coachgate.accounts import services
    from coachgate.accounts.models import User

    user = User.objects.filter(email__iexact=args.email).first()
    if user is None:
        print(f"error: no user with email {args.email}", file=sys.stderr)
        return 2
    issued = services.issue_token(user, args.name)
    print(issued.raw)
    return 0


def cmd_manage(args: argparse.Namespace, rest: Sequence[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["coachgate manage", *rest])
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coachgate", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def net(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--host", default=os.environ.get("COACHGATE_HOST", "127.0.0.1"))
        sp.add_argument("--port", type=int, default=int(os.environ.get("COACHGATE_PORT", "8000")))
        sp.add_argument("--threads", type=int, default=8)

    s = sub.add_parser("serve", help="run the web server (migrates first)")
    net(s)
    s.add_argument("--no-migrate", action="store_true")
    s.add_argument("--no-worker", action="store_true", help="do not run the worker in-process")
    s.add_argument("--with-worker", action="store_true",
                   help="run the worker in-process even on PostgreSQL")
    s.add_argument("--processes", type=int, default=1,
                   help="web processes on the one port (gunicorn); with N > 1 the worker, "
                        "where serve runs one, is one more process (default 1: waitress, "
                        "the worker in-process)")
    s.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("worker", help="run gate workers (tasks as they fall due + sweeps)")
    s.add_argument("--processes", type=int, default=1)
    s.add_argument("--poll", type=float, default=None, help="seconds between task polls")
    s.add_argument("--sweep-interval", type=float, default=None)
    s.add_argument("--no-sweep", action="store_true")
    s.add_argument("--sweep-only", action="store_true",
                   help="ignore wake-ups and only sweep (the cron design, for comparison)")
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("reconcile", help="sweep once: converge everything that is behind")
    s.add_argument("--limit", type=int, default=5000)
    s.set_defaults(func=cmd_reconcile)

    s = sub.add_parser("check", help="check the Discord bot's permissions in the guild")
    s.add_argument("--mode", default=None,
                   choices=["member_overwrites", "session_role", "offer_role"],
                   help="default: every mode used by a published offer")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("emulator", help="run the local Discord emulator on its own",
                       description="Serves Discord's REST routes under /api/v10 and, for "
                                   "outside tools, /_emulator/ (users, members, OAuth2 "
                                   "grants, the audit log; see docs/discord.md).")
    s.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    s.add_argument("--guild-name", default="coachgate")
    s.add_argument("--user", action="append", default=[],
                   help="a user to create in the guild (repeatable)")
    s.set_defaults(func=cmd_emulator)

    s = sub.add_parser("migrate", help="apply database migrations")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("demo", help="load demo coaches, offers, students and serve")
    net(s)
    s.add_argument("--no-serve", action="store_true", help="load the data and exit")
    s.add_argument("--lifecycle", action="store_true",
                   help="with --no-serve: book a one-minute session a minute ahead, print "
                        "its lifecycle, exit (serving does this by default)")
    s.add_argument("--no-lifecycle", action="store_true",
                   help="serve without booking the one-minute lifecycle session")
    s.add_argument("--reset", action="store_true",
                   help="delete the demo's data directory (only one the demo started) and "
                        "seed fresh demo data; without it a demo keeps its data")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("user", help="add or list users")
    s.add_argument("action", choices=["add", "list"])
    s.add_argument("--email")
    s.add_argument("--role", default="student", choices=["student", "coach", "admin"])
    s.add_argument("--password", help="or set COACHGATE_USER_PASSWORD; none = no web login")
    s.add_argument("--name")
    s.add_argument("--timezone", default="UTC")
    s.add_argument("--token", action="store_true", help="also print a new API token")
    s.set_defaults(func=cmd_user)

    s = sub.add_parser("token", help="create an API token for a user")
    s.add_argument("action", choices=["create"])
    s.add_argument("--email", required=True)
    s.add_argument("--name", default="cli")
    s.set_defaults(func=cmd_token)

    s = sub.add_parser("manage", help="any Django management command", add_help=False)
    s.set_defaults(func=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["manage"]:
        return cmd_manage(argparse.Namespace(), argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "user" and args.action == "add" and not args.email:
        parser.error("user add needs --email")
    if getattr(args, "processes", 1) < 1:
        parser.error("--processes must be at least 1")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
