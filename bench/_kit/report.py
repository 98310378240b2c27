"""How a benchmark hands its figures to `./run bench`: one JSON line per figure, appended to
the file named by COACHGATE_BENCH_REPORT (set by `./run bench`; unset when a script is run by
hand, and then only the line printed). bench/_table.py reads the lines back, prints the one
table and decides the exit status.

Stdlib only: scripts import this before Django is set up, and the gate-lateness child
imports its module without bench/ on the path."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Literal

ENV = "COACHGATE_BENCH_REPORT"
Direction = Literal["max", "min", "eq"]  # the value must be <=, >= or == the target
SIGN = {"max": "<=", "min": ">=", "eq": "=="}


def met(value: float, target: float, direction: Direction) -> bool:
    if direction == "max":
        return value <= target
    if direction == "min":
        return value >= target
    return value == target


def report(name: str, value: float, unit: str, target: float, direction: Direction, *,
           note: str = "") -> bool:
    """Record one figure against its target; returns whether the target was met.

    ``name`` says what was measured and how (`booking race, service, PG: bookings/s`);
    ``note`` anything the table's reader needs beside it (size, quick or full)."""
    ok = met(value, target, direction)
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "?"
    line = {"script": script, "name": name, "value": value, "unit": unit, "target": target,
            "direction": direction, "met": ok, "note": note}
    print(f"FIGURE {name}: {value:g} {unit} (target {SIGN[direction]} {target:g}): "
          f"{'met' if ok else 'NOT met'}", flush=True)
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:  # one short write: lines never mix
            out.write(json.dumps(line) + "\n")
    return ok
