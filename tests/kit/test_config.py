"""The typed settings object (coachgate.kit.config) and the report of unknown variables."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from pydantic import ValidationError

from coachgate.kit import config
from coachgate.kit.apps import unknown_settings_check
from coachgate.kit.config import conf, known_names, unknown_variables

SRC = Path(config.__file__).resolve().parents[1]
NAME = re.compile(r"COACHGATE_([A-Z][A-Z0-9_]*[A-Z0-9])")


def _names_in(paths: list[Path]) -> set[str]:
    found: set[str] = set()
    for p in paths:
        found |= set(NAME.findall(p.read_text()))
    return found


def test_every_variable_the_code_reads_is_known_and_every_known_one_is_read():
    """A variable read in the source but missing from the lists would be reported as
    unknown at start; a listed one nothing reads would hide a typo."""
    read = _names_in([SRC / "settings.py", SRC / "cli.py"])
    read -= {"SETTINGS_MODULE"}  # DJANGO_SETTINGS_MODULE is Django's
    assert read <= known_names(), read - known_names()
    listed = config.DJANGO_LEVEL | config.CLI_LEVEL
    assert listed <= read, listed - read
    tests_dir = Path(__file__).resolve().parents[1]
    for name in config.TEST_LEVEL:
        assert any(f"COACHGATE_{name}" in p.read_text()
                   for p in tests_dir.rglob("*.py")), name


def test_no_code_reads_the_settings_dict_by_key_any_more():
    offenders = [f"{p.relative_to(SRC)}:{i}"
                 for p in SRC.rglob("*.py") if p.name != "config.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if "settings.COACHGATE" in line and not line.lstrip().startswith("#")]
    assert offenders == []


def test_unknown_variables_name_the_nearest_setting():
    env = {"COACHGATE_PUBLC_URL": "x", "COACHGATE_PORT": "9000", "PATH": "/bin",
           "COACHGATE_ZZZ": "1", "COACHGATE_PACK_GRACE_HOURS": "24"}
    assert unknown_variables(env) == [
        "COACHGATE_PUBLC_URL is not a coachgate setting and is ignored "
        "(did you mean COACHGATE_PUBLIC_URL?)",
        "COACHGATE_ZZZ is not a coachgate setting and is ignored",
    ]


def test_the_system_check_reports_them(monkeypatch):
    monkeypatch.setenv("COACHGATE_SWEEP_INTERVALL", "5")
    messages = unknown_settings_check()
    assert [m.id for m in messages] == ["coachgate.W001"]
    assert "COACHGATE_SWEEP_INTERVAL?" in messages[0].msg


def test_environment_values_are_typed_and_bad_ones_stop_the_start(monkeypatch):
    monkeypatch.setenv("COACHGATE_PACK_GRACE_HOURS", "24")
    monkeypatch.setenv("COACHGATE_PUBLIC_URL", "https://coach.example/")
    built = config.from_environment()
    assert built["PACK_GRACE_HOURS"] == 24
    assert built["PUBLIC_URL"] == "https://coach.example"
    monkeypatch.setenv("COACHGATE_PLATFORM_FEE_PERCENT", "110")
    monkeypatch.setenv("COACHGATE_PAYMENT_GATEWAY", "paypal")
    with pytest.raises(ImproperlyConfigured) as exc:
        config.from_environment()
    assert "COACHGATE_PLATFORM_FEE_PERCENT" in str(exc.value)
    assert "COACHGATE_PAYMENT_GATEWAY" in str(exc.value)


def test_conf_follows_an_override_and_validates_it(settings):
    before = conf()
    assert before is conf()  # validated once per dict
    settings.COACHGATE = {**settings.COACHGATE, "PACK_GRACE_HOURS": "6"}
    assert conf().PACK_GRACE_HOURS == 6
    settings.COACHGATE["PACK_GRACE_HOURS"] = 7  # changed in place: seen too
    assert conf().PACK_GRACE_HOURS == 7
    settings.COACHGATE = {**settings.COACHGATE, "TRUSTED_PROXY_COUNT": 0}
    with pytest.raises(ValidationError, match="TRUSTED_PROXY_COUNT"):
        conf()


def test_a_typo_is_reported_when_a_command_starts(tmp_path):
    env = {"COACHGATE_DATA_DIR": str(tmp_path), "COACHGATE_PUBLC_URL": "http://x",
           "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "coachgate.cli", "user", "list"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert "COACHGATE_PUBLC_URL is not a coachgate setting" in r.stderr
    assert "did you mean COACHGATE_PUBLIC_URL?" in r.stderr
