"""/metrics: Prometheus exposition of gate runs, gate lateness and Discord calls, for the
operator only (loopback, an admin, or the metrics Bearer token)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from coachgate.access import services
from coachgate.access.models import SessionAccess
from coachgate.access.rules import Phase
from coachgate.accounts.models import User
from coachgate.integrations.discord.emulator import DiscordEmulator
from coachgate.scheduling import services as scheduling
from tests.clients import DiscordEnv
from tests.factories import MONDAY, make_coach, make_offer, make_student

START = MONDAY + timedelta(hours=10)
H = timedelta(hours=1)
S = timedelta(seconds=1)
REMOTE = "10.1.2.3"


@pytest.fixture
def discord(settings: Any) -> Iterator[DiscordEnv]:
    """As in tests/access/conftest.py: a running emulator with a configured guild."""
    with DiscordEmulator() as emu:
        guild = emu.create_guild("academy")
        settings.COACHGATE = {**settings.COACHGATE, "DISCORD_API_URL": emu.base_url,
                              "DISCORD_GUILD_ID": guild, "DISCORD_BOT_TOKEN": emu.bot_token}
        yield DiscordEnv(emu, guild)


def scrape(client: Client | None = None, **extra: Any) -> str:
    r = (client or Client()).get("/metrics", **extra)
    assert r.status_code == 200, r.content[:300]
    assert r["Content-Type"].startswith("text/plain")
    return r.content.decode()


def total(text: str, sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels``."""
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == sample and labels.items() <= s.labels.items())


def test_metrics_count_a_converge_against_the_emulator(db: None, discord: DiscordEnv,
                                                       now: datetime, admin: User) -> None:
    coach, student = make_coach(admin=admin), make_student()
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    services.converge(session.pk, now=START - 3 * H)  # the row, due at the grant gate

    before = scrape()
    for name in ("coachgate_gate_runs_total", "coachgate_gate_lateness_seconds",
                 "coachgate_discord_calls_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in before

    # The grant gate runs 5 s late.
    assert services.converge(session.pk, now=START - 2 * H + 5 * S).outcome == "ok"
    assert SessionAccess.objects.get(pk=session.pk).phase == Phase.GRANTED
    after = scrape()

    def delta(sample: str, **labels: str) -> float:
        return total(after, sample, **labels) - total(before, sample, **labels)

    assert delta("coachgate_gate_runs_total", kind="granted", result="ok") == 1
    assert delta("coachgate_gate_lateness_seconds_count", kind="grant") == 1
    assert delta("coachgate_gate_lateness_seconds_sum", kind="grant") == pytest.approx(5)
    # 5 s falls in the le="5" bucket but not in le="2"
    assert delta("coachgate_gate_lateness_seconds_bucket", kind="grant", le="5.0") == 1
    assert delta("coachgate_gate_lateness_seconds_bucket", kind="grant", le="2.0") == 0
    # The session's channel (and the category it goes in) were created, once each.
    created = delta("coachgate_discord_calls_total", method="POST",
                    route="/guilds/{guild_id}/channels")
    assert created == 2
    assert delta("coachgate_discord_calls_total") >= created


def test_failed_discord_calls_are_counted_by_status(db: None, discord: DiscordEnv,
                                                    now: datetime, admin: User) -> None:
    coach, student = make_coach(admin=admin), make_student()
    discord.link(coach, now=now)
    discord.link(student, now=now)
    offer = make_offer(coach, delivery="discord_voice")
    session = scheduling.book_session(student, offer.pk, START, now=now).session
    before = scrape()
    discord.emu.fail_next(1, status=502, route="POST /guilds/{guild_id}/channels")
    assert services.converge(session.pk, now=START - H).outcome == "retry"
    after = scrape()
    labels = {"method": "POST", "route": "/guilds/{guild_id}/channels", "status": "502"}
    assert (total(after, "coachgate_discord_calls_total", **labels)
            - total(before, "coachgate_discord_calls_total", **labels)) == 1
    runs = {"kind": "granted", "result": "retry"}
    assert (total(after, "coachgate_gate_runs_total", **runs)
            - total(before, "coachgate_gate_runs_total", **runs)) == 1


@pytest.mark.parametrize("addr", ["127.0.0.1", "::1"])
def test_loopback_may_scrape(db: None, addr: str) -> None:
    assert "coachgate_gate_runs" in scrape(REMOTE_ADDR=addr)


def forbidden(r: Any) -> None:
    assert r.status_code == 403
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["code"] == "forbidden"
    assert b"coachgate_" not in r.content


def test_other_addresses_are_refused(db: None) -> None:
    forbidden(Client().get("/metrics", REMOTE_ADDR=REMOTE))


def test_the_metrics_token_opens_it_from_elsewhere(db: None, settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "METRICS_TOKEN": "m-t0ken"}
    assert "coachgate_" in scrape(REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION="Bearer m-t0ken")
    for wrong in ("Bearer m-t0ke", "Bearer M-T0KEN", "Bearer ", "m-t0ken-", "Basic m-t0ken",
                  "Bearer sécret"):
        forbidden(Client().get("/metrics", REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION=wrong))


def test_no_token_configured_means_no_bearer_works(db: None, settings: Any) -> None:
    settings.COACHGATE = {**settings.COACHGATE, "METRICS_TOKEN": ""}
    for header in ("Bearer ", "Bearer", ""):
        forbidden(Client().get("/metrics", REMOTE_ADDR=REMOTE, HTTP_AUTHORIZATION=header))


def test_admins_may_scrape_from_anywhere(db: None, admin: User) -> None:
    client = Client()
    client.force_login(admin)
    assert "coachgate_" in scrape(client, REMOTE_ADDR=REMOTE)


def test_other_users_may_not(db: None) -> None:
    client = Client()
    client.force_login(make_student())
    forbidden(client.get("/metrics", REMOTE_ADDR=REMOTE))


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"])
def test_a_proxied_request_is_not_local(db: None, header: str) -> None:
    """Behind a reverse proxy on the same machine every request arrives from 127.0.0.1;
    one that carries forwarding headers came from elsewhere."""
    forbidden(Client().get("/metrics", REMOTE_ADDR="127.0.0.1", **{header: "203.0.113.9"}))


def test_healthz_stays_open(db: None) -> None:
    r = Client().get("/healthz", REMOTE_ADDR=REMOTE)
    assert r.status_code == 200 and r.json()["status"] == "ok"
