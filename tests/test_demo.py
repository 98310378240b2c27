"""The demo: data on the local Discord emulator with every demo user linked, the logins
and where to click, "Connect Discord" for a user who just signed up, and `--reset`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from django.test import Client

from coachgate import cli, demo
from coachgate.accounts import discord as linked
from coachgate.accounts.models import DiscordLink, User
from coachgate.accounts.tasks import join_discord_guild
from coachgate.integrations.discord.emulator import DiscordEmulator
from coachgate.scheduling.models import Session

ROOT = Path(__file__).resolve().parents[1]


def demo_oauth_app(settings: Any) -> None:
    """What `coachgate demo` does before the settings load: COACHGATE_DISCORD_CLIENT_ID and
    _SECRET default to the demo's application (here the settings are already loaded)."""
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    client_id, secret = cli.DEMO_DISCORD_APP
    providers["discord"] = {**providers["discord"],
                            "APP": {"client_id": client_id, "secret": secret}}
    settings.SOCIALACCOUNT_PROVIDERS = providers


@pytest.fixture
def emu(db: None, settings: Any) -> Iterator[DiscordEmulator]:
    demo_oauth_app(settings)
    emulator = demo.start_discord()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_demo_loads_on_the_emulator(emu: DiscordEmulator) -> None:
    summary = demo.load_demo("http://127.0.0.1:8000", emu=emu)
    cfg = linked.guild_settings()
    assert cfg is not None and cfg.api_url == emu.base_url
    assert emu.base_url in summary
    users = User.objects.filter(email__endswith="@demo.coachgate.test")
    assert users.count() == 6
    assert all(linked.verification_state(u) == "verified" for u in users)
    members = {m["user"]["id"] for m in emu.members(cfg.guild_id)}
    assert {linked.discord_user_id(u) for u in users} <= members
    # The demo's first booking is a Discord session: it passed the Discord guard.
    session = Session.objects.get()
    assert session.offer.delivery == "discord_voice"
    # Loading again (a restart) links everyone to the new emulator's accounts.
    again = demo.load_demo("http://127.0.0.1:8000", emu=emu)
    assert "coachgate demo is ready" in again
    assert Session.objects.count() == 1


def test_the_summary_says_who_to_log_in_as_and_where_to_click(emu: DiscordEmulator,
                                                               settings: Any) -> None:
    base = "http://127.0.0.1:8000"
    summary = demo.load_demo(base, emu=emu)
    lines = summary.splitlines()

    def line_of(email: str) -> str:
        [line] = [x for x in lines if email in x and "->" in x]
        return line

    assert f"'{demo.DEMO_PASSWORD}'" in summary
    assert line_of(demo.ADMIN).split()[0] == "Admin" and f"{base}/ops/" in line_of(demo.ADMIN)
    for email, *_ in demo.COACHES:
        assert line_of(email).split()[0] == "Coach" and f"{base}/coach/" in line_of(email)
    for email, *_ in demo.STUDENTS:
        assert line_of(email).split()[0] == "Student" and f"{base}/sessions/" in line_of(email)
    assert f"{base}/accounts/signup/" in summary and "Connect Discord" in summary
    assert f"OAuth app '{cli.DEMO_DISCORD_APP[0]}'" in summary
    sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    assert ("--reset" in summary) == sqlite  # --reset is for the demo's own SQLite file
    # Every account printed can log in on the web with the printed password.
    for email in [demo.ADMIN, *(c[0] for c in demo.COACHES), *(s[0] for s in demo.STUDENTS)]:
        assert Client().login(email=email, password=demo.DEMO_PASSWORD), email
    # The admin's and a coach's landing pages are where the summary sends them.
    c = Client()
    r = c.post("/accounts/login/", {"login": demo.ADMIN, "password": demo.DEMO_PASSWORD})
    assert r.status_code == 302 and r.url == "/ops/"
    r = Client().post("/accounts/login/", {"login": demo.COACHES[0][0],
                                           "password": demo.DEMO_PASSWORD})
    assert r.status_code == 302 and r.url == "/coach/"


def test_without_a_client_id_the_summary_says_connect_discord_is_off(db: None,
                                                                      settings: Any) -> None:
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["discord"] = {**providers["discord"], "APP": {"client_id": "", "secret": ""}}
    settings.SOCIALACCOUNT_PROVIDERS = providers
    emulator = demo.start_discord()
    try:
        assert "Connect Discord is off" in demo.load_demo("http://x", emu=emulator)
    finally:
        emulator.stop()


def _sign_up(client: Client, email: str) -> User:
    r = client.post("/accounts/signup/", {"email": email, "password1": "a-new-pass-9431",
                                          "password2": "a-new-pass-9431"})
    assert r.status_code == 302, r.content.decode()[:800]
    return User.objects.get(email=email)


def _to_emulator(client: Client, emu: DiscordEmulator) -> str:
    """The sessions page's Connect Discord button, posted: allauth sends the browser to
    the emulator's authorize page with the demo's client id."""
    page = client.get("/sessions/").content.decode()
    assert "Connect Discord" in page and 'data-state="not_connected"' in page
    start = client.post(linked.connect_url("/sessions/"))
    assert start.status_code == 302, start.content.decode()[:500]
    authorize = str(start["Location"])
    assert authorize.startswith(f"{emu.url}/oauth2/authorize?")
    assert parse_qs(urlsplit(authorize).query)["client_id"] == [cli.DEMO_DISCORD_APP[0]]
    return authorize


def test_a_user_who_just_signed_up_connects_discord_in_the_demo(emu: DiscordEmulator) -> None:
    demo.load_demo("http://testserver", emu=emu)
    client = Client()
    user = _sign_up(client, "newcomer@example.org")
    authorize = _to_emulator(client, emu)
    # The emulator knows the application: its consent page, not "Unknown application".
    consent = httpx.get(authorize)
    assert consent.status_code == 200, consent.text
    assert "text/html" in consent.headers["content-type"]
    assert 'name="emulator_username"' in consent.text and "Authorize" in consent.text
    # A bad username asks again; a good one makes the emulated account and approves.
    again = httpx.get(f"{authorize}&" + urlencode({"emulator_username": "x",
                                                   "emulator_consent": "allow"}))
    assert again.status_code == 200 and 'role="alert"' in again.text
    approved = httpx.get(f"{authorize}&" + urlencode({"emulator_username": "new_comer",
                                                      "emulator_consent": "allow"}))
    assert approved.status_code == 302, approved.text
    callback = urlsplit(approved.headers["Location"])
    assert callback.path == "/accounts/discord/login/callback/"
    done = client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302 and done["Location"] == "/sessions/"
    link = DiscordLink.objects.get(user=user)
    assert link.username == "new_comer"
    assert linked.verification_state(user) == "connected_not_in_guild"
    # The card asks again by itself (htmx) while the worker adds the member.
    card = client.get("/sessions/").content.decode()
    assert 'hx-get="/sessions/?discord_poll=1"' in card
    assert join_discord_guild.call(user.pk) == "verified"  # what the demo's worker runs
    cfg = linked.guild_settings()
    assert cfg is not None
    assert link.discord_user_id in {m["user"]["id"] for m in emu.members(cfg.guild_id)}
    page = client.get("/sessions/?discord_poll=1").content.decode()
    assert 'data-state="verified"' in page and "new_comer" in page and "hx-get" not in page
    # A restart of the demo (a new emulator) keeps them verified: relinked like the demo's.
    demo.link_everyone(emu)
    assert linked.verification_state(user) == "verified"
    assert DiscordLink.objects.get(user=user).discord_user_id != link.discord_user_id


def test_cancel_on_the_consent_page_links_nothing(emu: DiscordEmulator) -> None:
    demo.load_demo("http://testserver", emu=emu)
    client = Client()
    user = _sign_up(client, "doubter@example.org")
    authorize = _to_emulator(client, emu)
    denied = httpx.get(f"{authorize}&emulator_consent=deny")
    assert denied.status_code == 302
    callback = urlsplit(denied.headers["Location"])
    assert parse_qs(callback.query)["error"] == ["access_denied"]
    r = client.get(f"{callback.path}?{callback.query}", follow=True)
    assert r.status_code == 200
    assert not DiscordLink.objects.filter(user=user).exists()


# --- --reset: the demo's own data directory, nothing else -------------------------------

def _demo_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
           and not k.startswith("COACHGATE_")}
    env.update(COACHGATE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "coachgate.cli", "demo", "--no-serve", *args],
                          env=env, capture_output=True, text=True, timeout=240, check=False)


def _names(data_dir: Path) -> set[str]:
    with sqlite3.connect(data_dir / "coachgate.sqlite3") as db:
        return {row[0] for row in db.execute("SELECT display_name FROM accounts_user")}


def _rename_kim(data_dir: Path, name: str) -> None:
    """What a person might do in the demo: change a demo account."""
    with sqlite3.connect(data_dir / "coachgate.sqlite3") as db:
        db.execute("UPDATE accounts_user SET display_name = ? WHERE email = ?",
                   [name, demo.STUDENTS[1][0]])


def test_reset_starts_from_fresh_demo_data_and_without_it_the_demo_keeps_its_data(
        tmp_path: Path) -> None:
    data = tmp_path / "demo"
    first = _demo_cli(data)
    assert first.returncode == 0, first.stderr
    assert (data / cli.DEMO_MARKER).is_file()
    # The real process: the settings read the demo's client id from the environment.
    assert f"OAuth app '{cli.DEMO_DISCORD_APP[0]}'" in first.stdout
    _rename_kim(data, "Kim Changed")
    kept = _demo_cli(data)
    assert kept.returncode == 0, kept.stderr
    assert "Kim Changed" in _names(data)
    reset = _demo_cli(data, "--reset")
    assert reset.returncode == 0, reset.stderr
    assert f"deleted {data}" in reset.stdout
    names = _names(data)
    assert "Kim Changed" not in names and demo.STUDENTS[1][1] in names
    assert (data / cli.DEMO_MARKER).is_file()


def test_reset_refuses_a_directory_the_demo_did_not_start(tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    mine = tmp_path / "production"
    mine.mkdir()
    (mine / "coachgate.sqlite3").write_text("precious")
    refused = cli._reset_demo_data(mine)
    assert refused and "not started by the demo" in refused
    assert (mine / "coachgate.sqlite3").read_text() == "precious"
    # An empty or missing directory is fine; one the demo marked is deleted.
    assert cli._reset_demo_data(tmp_path / "missing") is None
    marked = tmp_path / "demo"
    marked.mkdir()
    (marked / cli.DEMO_MARKER).write_text("demo")
    (marked / "coachgate.sqlite3").write_text("demo data")
    assert cli._reset_demo_data(marked) is None and not marked.exists()
    # On PostgreSQL (DATABASE_URL) the demo is not on a database of its own.
    monkeypatch.setenv("DATABASE_URL", "postgres://somewhere/db")
    (tmp_path / "demo").mkdir()
    refused = cli._reset_demo_data(tmp_path / "demo")
    assert refused and "DATABASE_URL" in refused and (tmp_path / "demo").exists()
