"""Behind a reverse proxy (issue 9, item 8): the client's address comes from the trusted
proxy's X-Forwarded-For only, /metrics is not open to proxied requests, and allauth's login
rate limit counts each client on its own, in a cache every web process shares."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client, RequestFactory

from coachgate.kit.http import client_ip, is_local
from tests.factories import make_student

PROXY = "127.0.0.1"
ALICE, BOB = "198.51.100.7", "198.51.100.8"
TOO_MANY = "Too many failed login attempts"


@pytest.fixture
def trusted(settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "TRUSTED_PROXY": PROXY,
                          "TRUSTED_PROXY_COUNT": 1}


def request(remote: str, **headers: str) -> Any:
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


def test_the_client_address_comes_from_the_trusted_proxy_only(trusted: None,
                                                              settings: Any) -> None:
    assert client_ip(request(PROXY, HTTP_X_FORWARDED_FOR=ALICE)) == ALICE
    # A client's own X-Forwarded-For is kept by the proxy, which appends what it saw.
    assert client_ip(request(PROXY, HTTP_X_FORWARDED_FOR=f"127.0.0.1, {ALICE}")) == ALICE
    # Anyone else's header is not believed.
    assert client_ip(request(BOB, HTTP_X_FORWARDED_FOR=ALICE)) == BOB
    assert client_ip(request(PROXY)) == PROXY
    settings.COACHGATE = {**settings.COACHGATE, "TRUSTED_PROXY_COUNT": 2}  # CDN → proxy
    assert client_ip(request(PROXY, HTTP_X_FORWARDED_FOR=f"6.6.6.6, {ALICE}, {BOB}")) == ALICE
    settings.COACHGATE = {**settings.COACHGATE, "TRUSTED_PROXY": ""}
    assert client_ip(request(PROXY, HTTP_X_FORWARDED_FOR=ALICE)) == PROXY


def test_local_means_this_machine_not_relayed(trusted: None, settings: Any) -> None:
    assert is_local(request("127.0.0.1")) and is_local(request("::1"))
    assert not is_local(request(PROXY, HTTP_X_FORWARDED_FOR=ALICE))
    assert not is_local(request(PROXY, HTTP_X_REAL_IP=ALICE))  # which client? unknown
    assert not is_local(request(PROXY, HTTP_FORWARDED=f"for={ALICE}"))
    assert not is_local(request(ALICE, HTTP_X_FORWARDED_FOR="127.0.0.1"))
    settings.COACHGATE = {**settings.COACHGATE, "TRUSTED_PROXY": ""}
    assert not is_local(request("127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1"))


def test_metrics_refuse_a_client_behind_the_trusted_proxy(db: None, trusted: None) -> None:
    assert Client().get("/metrics", REMOTE_ADDR=PROXY).status_code == 200
    r = Client().get("/metrics", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


# --- the login rate limit ----------------------------------------------------------------


def login(client: Client, email: str, password: str, **headers: str) -> Any:
    return client.post("/accounts/login/", {"login": email, "password": password}, **headers)


def fail_logins(n: int, **headers: str) -> None:
    for i in range(n):
        r = login(Client(), f"nobody{i}@test.example", "wrong-password", **headers)
        assert r.status_code in (200, 429)


def test_a_proxied_client_is_limited_on_its_own(db: None, trusted: None) -> None:
    make_student("bob@test.example")
    fail_logins(12, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=ALICE)
    alice = login(Client(), "bob@test.example", "pw-student-123", REMOTE_ADDR=PROXY,
                  HTTP_X_FORWARDED_FOR=ALICE)
    assert alice.status_code != 302 and TOO_MANY in alice.text
    bob = login(Client(), "bob@test.example", "pw-student-123", REMOTE_ADDR=PROXY,
                HTTP_X_FORWARDED_FOR=BOB)
    assert bob.status_code == 302, bob.text[:500]


def test_a_forged_header_does_not_escape_the_limit(db: None) -> None:
    """Without a trusted proxy, X-Forwarded-For is the client's own claim: rotating it
    changes nothing, the limit counts the address the request came from."""
    make_student("bob@test.example")
    for i in range(12):
        login(Client(), f"nobody{i}@test.example", "wrong", REMOTE_ADDR=ALICE,
              HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    r = login(Client(), "bob@test.example", "pw-student-123", REMOTE_ADDR=ALICE,
              HTTP_X_FORWARDED_FOR="203.0.113.200")
    assert r.status_code != 302 and TOO_MANY in r.text


def test_rate_limit_counters_live_in_the_shared_database_cache(db: None) -> None:
    from django.conf import settings

    assert caches["default"].__class__.__name__ == "DatabaseCache"
    table = settings.CACHES["default"]["LOCATION"]
    fail_logins(3, REMOTE_ADDR=ALICE)
    with connection.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608
        assert cur.fetchone()[0] >= 1


# --- through a real waitress server ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "coachgate.cli", *args], env=env, check=True,  # noqa: S603
                   capture_output=True, timeout=120)


class Server:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "coachgate.cli", "serve", "--no-migrate", "--no-worker",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.base}/healthz", timeout=2)
                return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.output()
                assert time.monotonic() < deadline, "serve did not answer within 60 s"
                time.sleep(0.2)

    def output(self) -> str:
        return self.proc.stdout.read().decode() if self.proc.stdout else ""

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)

    def login(self, email: str, password: str, client_addr: str | None) -> httpx.Response:
        headers = {"X-Forwarded-For": client_addr} if client_addr else {}
        with httpx.Client(base_url=self.base, headers=headers, timeout=10) as http:
            page = http.get("/accounts/login/")
            found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            assert found, page.text[:300]
            return http.post("/accounts/login/", data={
                "login": email, "password": password, "csrfmiddlewaretoken": found.group(1)})


@pytest.fixture
def served_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "COACHGATE_TRUSTED_PROXY")}
    env["COACHGATE_DATA_DIR"] = str(tmp_path)
    env["COACHGATE_USER_PASSWORD"] = "pw-served-123"
    # Django's own migrate makes no cache table: `serve` makes it even with --no-migrate.
    _cli(env, "manage", "migrate", "--verbosity", "0")
    for email in ("alice@test.example", "bob@test.example"):
        _cli(env, "user", "add", "--email", email)
    yield env


def test_behind_a_proxy_through_waitress(served_env: dict[str, str]) -> None:
    """The embedded default (SQLite), served by waitress as in production, with the
    proxy's headers as Caddy or nginx send them."""
    port = _free_port()  # kept across the restart: allauth's per-account key names the host
    server = Server({**served_env, "COACHGATE_TRUSTED_PROXY": PROXY}, port)
    try:
        metrics = f"{server.base}/metrics"
        assert httpx.get(metrics).status_code == 200  # a scrape from this machine
        for headers in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
                        {"X-Real-IP": "203.0.113.9"}):
            assert httpx.get(metrics, headers=headers).status_code == 403, headers
        # Alice guesses passwords; Bob, behind the same proxy, still logs in.
        for _ in range(11):
            assert server.login("alice@test.example", "wrong", ALICE).status_code == 200
        assert TOO_MANY in server.login("bob@test.example", "pw-served-123", ALICE).text
        assert server.login("bob@test.example", "pw-served-123", BOB).status_code == 302
    finally:
        server.stop()

    # Restarted without a trusted proxy: forwarding headers are nobody's word, /metrics
    # still refuses them, and Alice's account is still locked (the counters outlived the
    # process: they are in the database, not in its memory).
    server = Server(served_env, port)
    try:
        metrics = f"{server.base}/metrics"
        assert httpx.get(metrics).status_code == 200
        for headers in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
            assert httpx.get(metrics, headers=headers).status_code == 403, headers
        r = server.login("alice@test.example", "pw-served-123", None)
        assert r.status_code == 200 and TOO_MANY in r.text
    finally:
        server.stop()
