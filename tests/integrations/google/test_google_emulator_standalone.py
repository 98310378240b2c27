"""``python -m coachgate.integrations.google.emulator`` runs alone and answers the client:
consent, code exchange and a Meet space over a real port, in its own process."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx

from coachgate.integrations.google.client import GoogleOAuth, MeetClient

REDIRECT_URI = "http://127.0.0.1:8000/cb"


def test_standalone_emulator_starts_serves_and_stops() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "coachgate.integrations.google.emulator", "--port", "0",
         "--user", "coach@example.com"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        info = json.loads(lines.get(timeout=15))
        assert info["api_base"] == info["url"] + "/v2"
        coach = info["users"]["coach@example.com"]
        with GoogleOAuth(info["client_id"], info["client_secret"], auth_base=info["auth_base"],
                         token_url=info["token_url"], userinfo_url=info["userinfo_url"],
                         revoke_url=info["revoke_url"]) as oauth:
            location = httpx.get(oauth.authorize_url(REDIRECT_URI, "s")).headers["location"]
            code = parse_qs(urlsplit(location).query)["code"][0]
            tokens = oauth.exchange_code(code, REDIRECT_URI, now=datetime.now(UTC))
            assert oauth.userinfo(tokens.access_token)["sub"] == coach
            with MeetClient(tokens.access_token, api_base=info["api_base"]) as meet:
                space = meet.create_space()
                assert meet.get_space(space["name"])["meetingCode"] == space["meetingCode"]
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - never expected
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0
