"""The one table `./run bench` ends with: every figure the scripts reported (bench/_kit/
report.py), its target, met or not; then every script that failed or reported nothing.
Exit status 1 when a target was missed or a script failed, else 0.

    python bench/_table.py REPORT.jsonl [--script NAME=EXIT ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SIGN = {"max": "<=", "min": ">=", "eq": "=="}


def fmt(value: float) -> str:
    return f"{value:.0f}" if value == int(value) and abs(value) >= 10 else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path)
    p.add_argument("--script", action="append", default=[], metavar="NAME=EXIT",
                   help="a script that ran and its exit status")
    p.add_argument("--took", action="append", default=[], metavar="NAME=SECONDS",
                   help="how long a script ran (printed under the table)")
    p.add_argument("--title", default="bench")
    a = p.parse_args(argv)
    rows = []
    if a.report.exists():
        for raw in a.report.read_text(encoding="utf-8").splitlines():
            if raw.strip():
                rows.append(json.loads(raw))
    exits = dict(item.rsplit("=", 1) for item in a.script)
    reported = {r["script"] for r in rows}

    table = [("script", "figure", "value", "target", "", "note")]
    for r in rows:
        table.append((r["script"], r["name"], f"{fmt(r['value'])} {r['unit']}",
                      f"{SIGN[r['direction']]} {fmt(r['target'])} {r['unit']}",
                      "met" if r["met"] else "NOT MET", r.get("note", "")))
    failed_scripts = []
    for script, code in exits.items():
        name = Path(script).stem
        if code != "0":
            failed_scripts.append(name)
        if code != "0" or name not in reported:
            # Scripts that say only pass/fail (or crashed before a figure): their exit status
            table.append((name, "exit status", code, "== 0", "met" if code == "0"
                          else "NOT MET", "" if name in reported else "no figures reported"))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    print(f"\n== {a.title}: {len(rows)} figures from {len(exits) or len(reported)} scripts ==")
    for i, row in enumerate(table):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    took = [(name, int(secs)) for name, secs in (item.rsplit("=", 1) for item in a.took)]
    if took:
        print("time: " + ", ".join(f"{name} {secs} s" for name, secs in took)
              + f"; {sum(s for _, s in took)} s in all")
    missed = [r for r in rows if not r["met"]]
    ok = not missed and not failed_scripts
    print(f"== {'all targets met' if ok else 'NOT all met'}: {len(rows) - len(missed)} of "
          f"{len(rows)} figures met" + (f"; scripts failed: {', '.join(failed_scripts)}"
                                        if failed_scripts else "") + " ==")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
