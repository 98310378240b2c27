"""The vendored front-end files are the registry's, unmodified: each file listed in a
VENDORED.md has the sha256 recorded there, with its licence file beside it, and every
vendored file is listed."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLES = [ROOT / "src/coachgate/web/static/vendor/VENDORED.md",
          ROOT / "tests/browser/vendor/VENDORED.md"]
ROW = re.compile(r"^\| (?P<dir>[\w.-]+) \| (?P<pkg>[^|]+) \| (?P<file>[\w.-]+) \| (?P<lic>[^|]+) "
                 r"\| (?P<sha>[0-9a-f]{64}) \|$")


def _rows(table: Path) -> list[re.Match[str]]:
    return [m for line in table.read_text().splitlines() if (m := ROW.match(line))]


@pytest.mark.parametrize("table", TABLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_vendored_file_has_its_recorded_sum_and_licence(table: Path) -> None:
    rows = _rows(table)
    assert rows, f"no rows in {table}"
    listed = set()
    for m in rows:
        path = table.parent / m["dir"] / m["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == m["sha"], f"{path} changed"
        assert list((table.parent / m["dir"]).glob("LICENSE*")), f"no licence beside {path}"
        listed.add(path)
    on_disk = {p for p in table.parent.glob("*/*") if not p.name.startswith("LICENSE")}
    assert on_disk == listed, f"vendored but not listed: {sorted(on_disk - listed)}"
