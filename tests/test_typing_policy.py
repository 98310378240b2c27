"""mypy runs strict (pyproject.toml); an exception to it says which check and why."""
from __future__ import annotations

import re
from pathlib import Path

import coachgate

SRC = Path(coachgate.__file__).resolve().parent
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
EXPLAINED = re.compile(r"^\[[a-z-]+(, *[a-z-]+)*\]\s+#\s*\S")


def test_every_type_ignore_names_its_error_code_and_a_reason():
    bare = []
    for path in sorted(SRC.rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = IGNORE.search(line)
            if m and not EXPLAINED.match(m.group("rest")):
                bare.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert bare == []


def test_mypy_is_strict():
    text = (SRC.parents[1] / "pyproject.toml").read_text()
    section = text.split("[tool.mypy]", 1)[1].split("\n[", 1)[0]
    assert re.search(r"^strict = true$", section, re.M)
