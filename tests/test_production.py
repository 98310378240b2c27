"""Production posture (issue 9, item 9): COACHGATE_PRODUCTION=1 refuses a weak setup,
turns on HTTPS, HSTS and secure cookies, `check --deploy` is clean with the documented
settings, every response has a content security policy, the SQLite files are private and
the API docs need no internet."""

from __future__ import annotations

import os
import re
import secrets
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client

from coachgate.scheduling import services as scheduling
from tests.factories import MONDAY


def strong_key() -> str:
    return secrets.token_urlsafe(50)


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The production settings documented in docs/configuration.md."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "COACHGATE_DEBUG") and not k.startswith("COACHGATE_")}
    env.update(COACHGATE_DATA_DIR=str(tmp_path), COACHGATE_PRODUCTION="1",
               COACHGATE_SECRET_KEY=strong_key(), COACHGATE_ALLOWED_HOSTS="coach.example.com",
               COACHGATE_CSRF_TRUSTED_ORIGINS="https://coach.example.com",
               COACHGATE_PUBLIC_URL="https://coach.example.com",
               COACHGATE_TRUSTED_PROXY="127.0.0.1")
    env.update(extra)
    return env


def coachgate(env: dict[str, str], *args: str,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "coachgate.cli", *args], env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("weak", [
    {"COACHGATE_DEBUG": "1"},
    {"COACHGATE_SECRET_KEY": "too-short-a-key"},
    {"COACHGATE_SECRET_KEY": "django-insecure-" + "x" * 60},
    {"COACHGATE_SECRET_KEY": "ab" * 40},  # long, but two distinct characters
    {"COACHGATE_SECRET_KEY": ""},  # the generated key in the data directory
])
def test_production_refuses_to_start_weak(tmp_path: Path, weak: dict[str, str]) -> None:
    env = production_env(tmp_path, **weak)
    if not weak.get("COACHGATE_SECRET_KEY", "x"):
        del env["COACHGATE_SECRET_KEY"]
    for command in (["serve", "--port", "1"], ["worker"], ["migrate"]):
        done = coachgate(env, *command, timeout=60)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "COACHGATE_PRODUCTION=1 refuses to start" in done.stderr
    assert not (tmp_path / "coachgate.sqlite3").exists()
    assert not (tmp_path / "secret_key").exists()


def test_the_same_setup_starts_without_production_mode(tmp_path: Path) -> None:
    env = production_env(tmp_path, COACHGATE_DEBUG="1", COACHGATE_SECRET_KEY="short")
    del env["COACHGATE_PRODUCTION"]
    assert coachgate(env, "migrate").returncode == 0
    # migrate also made the table of the shared cache (login rate-limit counters).
    with sqlite3.connect(tmp_path / "coachgate.sqlite3") as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'coachgate_cache'"
                          ).fetchall() == [("coachgate_cache",)]


def test_check_deploy_is_clean_with_the_documented_settings(tmp_path: Path) -> None:
    done = coachgate(production_env(tmp_path), "manage", "check", "--deploy",
                     "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
    # Without production mode the same check finds what production mode turns on.
    env = production_env(tmp_path)
    del env["COACHGATE_PRODUCTION"]
    done = coachgate(env, "manage", "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stdout + done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def production_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = production_env(tmp_path, COACHGATE_ALLOWED_HOSTS="coach.example.com,127.0.0.1")
    proc = subprocess.Popen(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "coachgate.cli", "serve", "--no-worker", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_production_serves_https_only_behind_the_proxy(production_server: str) -> None:
    base = production_server
    # Probes on the machine itself speak plain HTTP.
    assert httpx.get(f"{base}/healthz").status_code == 200
    # Anything else over plain HTTP is sent to HTTPS.
    r = httpx.get(f"{base}/accounts/login/", headers={"Host": "coach.example.com"})
    assert r.status_code == 301
    assert r.headers["Location"] == "https://coach.example.com/accounts/login/"
    # What the TLS proxy relays is HTTPS: HSTS, a CSP and secure cookies.
    r = httpx.get(f"{base}/accounts/login/", headers={
        "Host": "coach.example.com", "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 200
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    cookie = r.headers["Set-Cookie"]
    assert "csrftoken=" in cookie and "Secure" in cookie


def test_every_page_has_a_content_security_policy(db: Any, offer: Any, student: Any,
                                                  now: Any) -> None:
    scheduling.book_session(student, offer.pk, MONDAY.replace(hour=9), now=now)
    client = Client()
    client.force_login(student)
    for path in ("/", f"/offers/{offer.pk}/", "/sessions/", "/api/v1/docs", "/accounts/login/",
                 "/api/v1/offers"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "script-src 'self' 'nonce-" in policy and "object-src 'none'" in policy
    # The pages' scripts are files of the site's own (no inline script a policy would have
    # to allow), and the nonce an inline script would need is fresh per response.
    r = client.get("/sessions/")
    nonce = re.search(r"'nonce-([^']+)'", r["Content-Security-Policy"])
    assert nonce and "<script>" not in r.text and "<script nonce" not in r.text
    assert re.findall(r'<script src="(/static/[^"]+)"', r.text), "the page's own scripts"
    assert client.get("/sessions/")["Content-Security-Policy"] != r["Content-Security-Policy"]


def test_the_policy_is_a_setting(db: Any, settings: Any) -> None:
    settings.CONTENT_SECURITY_POLICY = "default-src 'none'"
    assert Client().get("/")["Content-Security-Policy"] == "default-src 'none'"
    settings.CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in Client().get("/")


def test_the_api_docs_work_offline(db: Any) -> None:
    r = Client().get("/api/v1/docs")
    assert r.status_code == 200
    scripts = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', r.text)
    assert "/static/ninja/swagger-ui-bundle.js" in scripts
    assert all(s.startswith("/static/") for s in scripts), scripts  # no CDN
    for asset in scripts:
        served = Client().get(asset)
        assert served.status_code == 200, asset
        assert b"".join(served.streaming_content) if served.streaming else served.content


SQLITE_PROBE = """
import os, stat, django
os.environ["DJANGO_SETTINGS_MODULE"] = "coachgate.settings"
django.setup()
from django.db import connection
with connection.cursor() as cur:
    cur.execute("CREATE TABLE probe (x integer)")
    cur.execute("INSERT INTO probe VALUES (1)")
    data = os.environ["COACHGATE_DATA_DIR"]
    for name in ("coachgate.sqlite3", "coachgate.sqlite3-wal", "coachgate.sqlite3-shm",
                 "secret_key", ""):
        print(name or "dir", oct(stat.S_IMODE(os.stat(os.path.join(data, name)).st_mode)))
"""


def test_the_sqlite_files_are_private(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k != "DATABASE_URL" and not k.startswith("COACHGATE_")}
    env["COACHGATE_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run([sys.executable, "-c", SQLITE_PROBE], env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr
    modes = dict(line.split() for line in done.stdout.splitlines())
    assert modes == {"coachgate.sqlite3": "0o600", "coachgate.sqlite3-wal": "0o600",
                     "coachgate.sqlite3-shm": "0o600", "secret_key": "0o600",
                     "dir": "0o700"}


def test_existing_sqlite_files_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "coachgate.sqlite3"
    db.write_bytes(b"")
    db.chmod(0o644)
    env = {k: v for k, v in os.environ.items()
           if k != "DATABASE_URL" and not k.startswith("COACHGATE_")}
    env["COACHGATE_DATA_DIR"] = str(data)
    done = subprocess.run([sys.executable, "-c", "import coachgate.settings"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
