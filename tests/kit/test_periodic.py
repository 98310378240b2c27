"""kit.periodic: the apps register their sweeps and timer rows; the worker knows no app."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from coachgate.kit import periodic

NOW = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty registry for the test (the apps' registrations come back afterwards)."""
    monkeypatch.setattr(periodic, "_sweeps", {})
    monkeypatch.setattr(periodic, "_timer_rows", {})


def test_the_apps_register_their_sweeps_in_layer_order():
    assert [s.name for s in periodic.sweeps()] == ["access", "notify", "billing",
                                                   "meetings", "packs"]
    assert list(periodic._timer_rows) == ["access", "settlement", "payments", "meetings",
                                          "packs", "seats"]


def test_sweeps_run_by_order_each_on_its_own(registry, caplog):
    ran: list[str] = []

    def ok(name: str) -> Any:
        def run(ctx: periodic.SweepContext) -> dict[str, Any]:
            ran.append(name)
            assert (ctx.now, ctx.owner, ctx.limit, ctx.drift) == (NOW, "w1", 7, False)
            return {"ran": name}
        return run

    def broken(ctx: periodic.SweepContext) -> dict[str, Any]:
        ran.append("broken")
        raise RuntimeError("injected")

    periodic.register_sweep("late", ok("late"), order=50)
    periodic.register_sweep("broken", broken, order=20)
    periodic.register_sweep("early", ok("early"), order=10)
    closed: list[int] = []
    report = periodic.sweep_all(now=NOW, owner="w1", limit=7, drift=False,
                                after_each=lambda: closed.append(1))
    assert ran == ["early", "broken", "late"]
    assert report == {"early": {"ran": "early"}, "broken": {"error": "RuntimeError: injected"},
                      "late": {"ran": "late"}}
    assert len(closed) == 3  # after every sweep, the failing one too
    assert "broken sweep failed" in caplog.text


def test_registering_twice_is_harmless_but_a_second_owner_of_a_name_is_refused(registry):
    def run(ctx: periodic.SweepContext) -> dict[str, Any]:
        return {}

    periodic.register_sweep("x", run, order=1)
    periodic.register_sweep("x", run, order=1)  # ready() running again
    assert len(periodic.sweeps()) == 1
    with pytest.raises(ValueError, match="'x' is registered already"):
        periodic.register_sweep("x", lambda ctx: {}, order=1)
    with pytest.raises(ValueError):
        periodic.register_sweep("x", run, order=2)


@pytest.mark.django_db
def test_failing_rows_are_listed_by_registered_kind():
    report = periodic.sweep_all(now=NOW, failing=True)
    assert set(report) == {"access", "notify", "billing", "meetings", "packs", "failing"}
    assert report["failing"] == {"access": [], "settlement": [], "payments": [],
                                 "meetings": [], "packs": [], "seats": []}
