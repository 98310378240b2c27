"""`coachgate serve --processes 2` as real processes: two web processes answer on one port,
the worker runs once beside them, and /metrics sums what every process counted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

DEADLINE_S = 90  # a loaded 2-core machine migrates a fresh SQLite file in ~20 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every live process below ``root`` (from /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parent[int(stat.parent.name)] = int(fields[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                try:
                    cmd = (Path("/proc") / str(child) / "cmdline").read_bytes()
                except OSError:
                    continue
                found[child] = cmd.replace(b"\0", b" ").decode(errors="replace")
                frontier.append(child)
    return found


def _read_response(conn: socket.socket) -> bytes:
    """One whole HTTP/1.1 response (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert found, head
    length = int(found.group(1))
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    assert len(body) == length, "more bytes than the response announced"
    return head


def _per_process(text: str) -> dict[str, float]:
    return {s.labels["pid"]: s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "coachgate_process_http_requests"}


def _total(text: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "coachgate_http_requests_total")


def test_serve_with_two_processes_sums_metrics_and_runs_one_worker(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env["COACHGATE_DATA_DIR"] = str(tmp_path)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "coachgate.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--processes", "2", "--threads", "2"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    sent = 0
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                r = httpx.get(f"{base}/healthz", timeout=2)
                sent += 1
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "serve did not answer in time"
                time.sleep(0.2)
        assert r.json()["status"] == "ok"

        # New connections, several at once, until both web processes have served some.
        def hit(_: int) -> int:
            return httpx.get(f"{base}/healthz", timeout=10).status_code

        seen: dict[str, float] = {}
        with ThreadPoolExecutor(8) as pool:
            while len(seen) < 2:
                assert time.monotonic() < deadline, f"one process served all: {seen}"
                codes = list(pool.map(hit, range(16)))
                assert codes == [200] * 16
                sent += 16
                text = httpx.get(f"{base}/metrics", timeout=10).text
                sent += 1
                seen = {pid: n for pid, n in _per_process(text).items() if n > 0}

        # Every request counted once, whichever process took it: the summed counter is
        # what this test sent (the scrape counts itself), and so are the per-process parts.
        assert _total(text) == sent
        assert sum(seen.values()) == sent

        # A keep-alive connection idle for longer than gunicorn's default 2 s stays open
        # (clients reusing one the server had just closed got "connection reset").
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            request = (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").encode()
            for _ in range(2):
                conn.sendall(request)
                assert _read_response(conn).startswith(b"HTTP/1.1 200")
                sent += 1
                time.sleep(3)
                conn.setblocking(False)
                try:
                    closed = conn.recv(1) == b""
                except BlockingIOError:
                    closed = False  # nothing to read and not closed: still alive
                conn.setblocking(True)
                assert not closed, "the server closed an idle keep-alive connection"

        tree = _descendants(proc.pid)
        workers = [pid for pid, cmd in tree.items() if "coachgate.cli worker" in cmd]
        web = {pid for pid, cmd in tree.items() if "--supervised" in cmd}
        assert len(workers) == 1, tree  # once, not once per web process
        assert {int(p) for p in seen} <= web, (seen, tree)
        assert str(workers[0]) not in seen
        assert f"worker running in its own process (pid {workers[0]})" in log.read_text()
        metrics_dirs = {m.group(1) for m in re.finditer(
            r"PROMETHEUS_MULTIPROC_DIR=(\S+)",
            (Path("/proc") / str(workers[0]) / "environ").read_bytes()
            .replace(b"\0", b" ").decode(errors="replace"))}
        assert len(metrics_dirs) == 1, metrics_dirs
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert proc.returncode == 0, log.read_text()[-3000:]
    time.sleep(0.5)
    left = [pid for pid in (*tree,) if Path(f"/proc/{pid}").exists()
            and "coachgate" in (Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))]
    assert left == [], left  # the web processes and the worker stopped with serve
    assert not Path(metrics_dirs.pop()).exists()  # the run's fresh directory is gone
