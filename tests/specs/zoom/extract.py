"""Cut the parts of Zoom's API description that coachgate uses out of the whole.

    python tests/specs/zoom/extract.py path/to/zoom-api/openapi.v2.json

writes ``openapi-subset.json`` beside this file: the operations below, with every
definition and parameter they reference (transitively), unchanged. See README.md for the
source.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: (method, path) of every operation coachgate's Zoom client performs. ``GET /users/me``
#: is ``GET /users/{userId}`` with ``me``. OAuth (zoom.us/oauth/token) is not in the
#: document.
OPERATIONS = (
    ("get", "/users/{userId}"),
    ("post", "/users/{userId}/meetings"),
    ("get", "/meetings/{meetingId}"),
    ("patch", "/meetings/{meetingId}"),
    ("delete", "/meetings/{meetingId}"),
    ("get", "/past_meetings/{meetingId}/instances"),
    ("get", "/past_meetings/{meetingUUID}/participants"),
)
#: What is kept of the document's head (the rest is tags, security and examples).
HEAD = ("swagger", "info", "host", "basePath", "schemes", "consumes", "produces")


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def subset(doc: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS:
        item = doc["paths"][path]
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
        kept[method] = item[method]
    sections: dict[str, dict[str, Any]] = {}
    todo: set[str] = set()
    _refs(paths, todo)
    done: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in done:
            continue
        done.add(ref)
        section, name = ref.removeprefix("#/").split("/")
        node = doc[section][name]
        sections.setdefault(section, {})[name] = node
        _refs(node, todo)
    out = {k: doc[k] for k in HEAD if k in doc}
    out["paths"] = paths
    for section in sorted(sections):
        out[section] = dict(sorted(sections[section].items()))
    return out


def main(argv: list[str]) -> int:
    source = Path(argv[1])
    doc = json.loads(source.read_text())
    target = Path(__file__).with_name("openapi-subset.json")
    target.write_text(json.dumps(subset(doc), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
