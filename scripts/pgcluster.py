#!/usr/bin/env python3
"""Throwaway PostgreSQL 15 cluster for tests, benchmarks and local hacking.

Stdlib only: ./run calls it with the system python3, before .venv may exist.

Importable::

    sys.path.insert(0, "scripts")
    from pgcluster import throwaway_cluster
    with throwaway_cluster() as database_url:
        ...

CLI::

    python3 scripts/pgcluster.py run [--durable] [--max-connections N] -- CMD ARGS...

runs CMD with DATABASE_URL exported, then stops the cluster and deletes its
directory (also when CMD fails or on Ctrl-C / SIGTERM) and exits with CMD's code.

The server only ever listens on 127.0.0.1 (plus a unix socket inside its own
temp dir) and trusts every connection, so it must never be reachable elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PG_BIN = "/usr/lib/postgresql/15/bin"
HOST = "127.0.0.1"  # the only address this cluster may ever use
DB_USER = "coachgate"
DB_NAME = "coachgate"
# PostgreSQL refuses to run as root; as root we drop to this user for the server.
UNPRIVILEGED_USER = "nobody"


class ClusterError(RuntimeError):
    pass


def _log(msg: str) -> None:
    print(f"pgcluster: {msg}", file=sys.stderr, flush=True)


def _pg_bin() -> Path:
    bin_dir = Path(os.environ.get("PG_BIN", DEFAULT_PG_BIN))
    if not (bin_dir / "pg_ctl").exists():
        raise ClusterError(
            f"no pg_ctl in {bin_dir}; install PostgreSQL 15 server "
            "(apt-get install postgresql-15) or set PG_BIN"
        )
    return bin_dir


def _server_user() -> pwd.struct_passwd | None:
    """The user to run initdb/pg_ctl as, or None for 'the current user'."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise ClusterError("running as root but `runuser` (util-linux) is missing")
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise ClusterError(f"running as root but user {UNPRIVILEGED_USER!r} is missing") from None


def _temp_parent(user: pwd.struct_passwd | None) -> str | None:
    """Where to make the cluster dir: the usual temp dir, unless the
    unprivileged server user could not traverse its parents (e.g. TMPDIR under
    /root); then fall back to /tmp."""
    parent = tempfile.gettempdir()
    if user is None:
        return parent
    for p in [Path(parent), *Path(parent).parents]:
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return "/tmp"  # noqa: S108 - world-traversable; the dir itself is private
    return parent


def _free_port() -> int:
    # Bind port 0 to let the kernel pick a free port. There is a small race
    # until postgres binds it; _start retries with a new port if it lost.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _run(
    cmd: list[str], *, user: pwd.struct_passwd | None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool (as the unprivileged user if we are root).

    Output goes to an anonymous temp file rather than a pipe: pg_ctl start
    forks the long-lived postmaster, which must not hold our pipe open.
    """
    if user is not None:
        cmd = ["runuser", "-u", user.pw_name, "--", *cmd]
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
        out.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), None)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _initdb(bin_dir: Path, data: Path, user: pwd.struct_passwd | None, cwd: Path) -> None:
    base = [str(bin_dir / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8"]
    # C.UTF-8 gives sane UTF-8 collation without needing generated locales;
    # if the machine lacks it, plain C (--no-locale) is fine for tests.
    for locale_args in (["--locale=C.UTF-8"], ["--no-locale"]):
        res = _run([*base, *locale_args], user=user, cwd=cwd)
        if res.returncode == 0:
            return
        shutil.rmtree(data, ignore_errors=True)  # initdb may leave a partial dir
    raise ClusterError(f"initdb failed:\n{res.stdout}")


def _start(
    bin_dir: Path,
    base: Path,
    data: Path,
    user: pwd.struct_passwd | None,
    durable: bool,
    max_connections: int,
) -> int:
    log = base / "postgres.log"
    for _attempt in range(3):
        port = _free_port()
        opts = {
            "listen_addresses": HOST,
            "port": str(port),
            "unix_socket_directories": str(base),
            "max_connections": str(max_connections),
        }
        if not durable:
            # Throwaway data: trade crash safety for speed.
            opts |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        # pg_ctl hands -o to a shell, so quote each value.
        o = " ".join(f"-c {k}={shlex.quote(v)}" for k, v in opts.items())
        res = _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                o,
                "start",
            ],
            user=user,
            cwd=base,
        )
        if res.returncode == 0:
            return port
        log_tail = _tail(log)
        if "could not bind" in log_tail or "already in use" in log_tail:
            _log(f"port {port} was taken, retrying with another")
            continue
        break
    raise ClusterError(f"pg_ctl start failed:\n{res.stdout}\n--- {log} (tail) ---\n{_tail(log)}")


def _stop(bin_dir: Path, data: Path, user: pwd.struct_passwd | None, cwd: Path) -> None:
    if not (data / "postmaster.pid").exists():
        return  # never started (or already gone)
    res = _run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
        user=user,
        cwd=cwd,
    )
    if res.returncode == 0:
        return
    # pg_ctl could not stop it: kill the postmaster ourselves so that no
    # server outlives its deleted directory.
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)
    _log(f"pg_ctl stop failed:\n{res.stdout}")


@contextlib.contextmanager
def throwaway_cluster(durable: bool = False, max_connections: int = 200) -> Iterator[str]:
    """Start a private PostgreSQL 15 cluster; yield its DATABASE_URL.

    The cluster (and all its data) is destroyed when the block exits.
    """
    bin_dir = _pg_bin()
    user = _server_user()
    base = Path(tempfile.mkdtemp(prefix="coachgate-pg-", dir=_temp_parent(user)))
    data = base / "data"
    try:
        if user is not None:
            # mkdtemp dirs are 0700 root: hand ours to the server user.
            os.chown(base, user.pw_uid, user.pw_gid)
        _initdb(bin_dir, data, user, base)
        port = _start(bin_dir, base, data, user, durable, max_connections)
        res = _run(
            [str(bin_dir / "createdb"), "-h", HOST, "-p", str(port), "-U", DB_USER, DB_NAME],
            user=None,
            cwd=base,
        )
        if res.returncode != 0:
            raise ClusterError(f"createdb failed:\n{res.stdout}")
        yield f"postgresql://{DB_USER}@{HOST}:{port}/{DB_NAME}"
    finally:
        try:
            _stop(bin_dir, data, user, base)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _run_command(cmd: list[str], durable: bool, max_connections: int) -> int:
    with throwaway_cluster(durable=durable, max_connections=max_connections) as url:
        _log(f"PostgreSQL 15 cluster up at {url}")
        env = {**os.environ, "DATABASE_URL": url}
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as exc:
            _log(f"cannot run {cmd[0]!r}: {exc}")
            return 127
        try:
            rc = proc.wait()
        except BaseException:
            # Ctrl-C / SIGTERM: give CMD a moment to finish, then make sure it
            # is gone before the cluster under it disappears.
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    return rc if rc >= 0 else 128 - rc  # killed by signal N -> 128+N, like a shell


def _on_sigterm(signum: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so the finally-blocks tear the cluster down.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pgcluster.py", description="Throwaway PostgreSQL 15 cluster on 127.0.0.1."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run CMD with DATABASE_URL set to a fresh cluster")
    run.add_argument(
        "--durable", action="store_true", help="keep fsync/synchronous_commit/full_page_writes on"
    )
    run.add_argument("--max-connections", type=int, default=200)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("missing command: pgcluster.py run -- CMD ARGS...")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run_command(cmd, args.durable, args.max_connections)
    except ClusterError as exc:
        _log(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
