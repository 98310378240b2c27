"""`./run bench`'s verdict: bench/_kit/report.py records figures, bench/_table.py prints one
table and fails the run when a target was missed or a script failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _report(path: Path, *figures: tuple[str, float, float, str]) -> None:
    """Figures reported the way a bench script does, through the helper itself."""
    code = ("import sys; sys.path.insert(0, 'bench'); from _kit.report import report\n"
            + "".join(f"report({n!r}, {v!r}, 'ms', {t!r}, {d!r})\n" for n, v, t, d in figures))
    env = {**os.environ, "COACHGATE_BENCH_REPORT": str(path)}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,  # noqa: S603
                   capture_output=True)


def _table(path: Path, *scripts: str) -> subprocess.CompletedProcess[str]:
    args = [a for s in scripts for a in ("--script", s)]
    return subprocess.run([sys.executable, "bench/_table.py", str(path), *args],  # noqa: S603
                          cwd=ROOT, capture_output=True, text=True, check=False)


def test_every_target_met_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    _report(path, ("slots", 7.5, 20, "max"), ("rate", 250, 200, "min"), ("calls", 2, 2, "eq"))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["met"] for x in lines] == [True, True, True]
    out = _table(path, "c=0")
    assert out.returncode == 0, out.stdout
    assert "NOT MET" not in out.stdout and "3 of 3 figures met" in out.stdout


def test_a_missed_target_fails_the_run(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    _report(path, ("slots", 25.0, 20, "max"), ("rate", 250, 200, "min"))
    out = _table(path, "c=0")
    assert out.returncode == 1
    row = next(line for line in out.stdout.splitlines() if " slots " in line)
    assert "NOT MET" in row and "25" in row and "<= 20" in row


def test_a_failed_script_without_figures_fails_the_run(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    _report(path, ("rate", 250, 200, "min"))
    out = _table(path, "c=0", "crashed=2")
    assert out.returncode == 1
    assert any("crashed" in line and "no figures reported" in line and "NOT MET" in line
               for line in out.stdout.splitlines()), out.stdout
