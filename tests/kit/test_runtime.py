"""kit.runtime: the settings serving processes apply once they have loaded everything."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from coachgate.kit import runtime


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_serving_processes_collect_less_often_and_freeze_what_start_up_loaded(
        restore_gc: None) -> None:
    _, second, third = gc.get_threshold()
    runtime.tune_for_serving()
    assert gc.get_threshold() == (runtime.GC_FIRST_GENERATION_THRESHOLD, second, third)
    assert gc.get_freeze_count() > 1000  # Django and coachgate's modules, at least
