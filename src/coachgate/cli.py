"""The `coachgate` command: serve, migrate, demo, user, token, manage."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coachgate.settings")
    import django

    django.setup()


def _migrate(verbosity: int = 1) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)


def cmd_serve(args: argparse.Namespace) -> int:
    _setup()
    if not args.no_migrate:
        _migrate(verbosity=0)
    from waitress import serve

    from coachgate.wsgi import application

    print(f"coachgate listening on http://{args.host}:{args.port}/  (Ctrl-C to stop)", flush=True)
    serve(application, host=args.host, port=args.port, threads=args.threads, ident="coachgate")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    _setup()
    _migrate()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    _setup()
    _migrate(verbosity=0)
    from coachgate import demo

    summary = demo.load_demo(base_url=f"http://{args.host}:{args.port}")
    print(summary, flush=True)
    if args.no_serve:
        return 0
    return cmd_serve(argparse.Namespace(host=args.host, port=args.port, threads=args.threads,
                                        no_migrate=True))


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
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("migrate", help="apply database migrations")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("demo", help="load demo coaches, offers, students and serve")
    net(s)
    s.add_argument("--no-serve", action="store_true", help="load the data and exit")
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
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
