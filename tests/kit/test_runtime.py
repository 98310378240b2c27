"""kit.runtime: the settings serving processes apply once they have loaded everything."""

from __future__ import annotations

import gc
import sys
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


def test_serving_processes_load_the_url_conf_before_their_first_request() -> None:
    from django.urls import clear_url_caches, get_resolver

    clear_url_caches()  # as a freshly started process has it: nothing resolved yet
    assert not get_resolver()._populated
    runtime.load_lazy_modules()
    resolver = get_resolver()
    assert resolver._populated  # the reverse table is built
    assert "coachgate.urls" in sys.modules
