"""What every integration client (Discord, Zoom, Google) reports about its HTTP attempts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP attempt: ``status`` is 0 when no answer came (timeout, connection error);
    ``at`` is time.time() when the attempt started; ``route`` is templated."""

    method: str
    route: str
    status: int
    duration_s: float
    at: float


def report_call(on_call: Callable[[CallRecord], None] | None, log: logging.Logger,
                name: str, method: str, route: str, status: int, started: float,
                at: float) -> None:
    """Hand one attempt (``started``: time.monotonic() when it began) to ``on_call``; a
    broken hook is logged and never fails the call it reports."""
    if on_call is None:
        return
    record = CallRecord(method=method, route=route, status=status,
                        duration_s=time.monotonic() - started, at=at)
    try:
        on_call(record)
    except Exception:
        log.exception("%s: on_call hook failed", name)
