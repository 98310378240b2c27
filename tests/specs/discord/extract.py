"""Cut the parts of Discord's OpenAPI document that coachgate uses out of the whole.

    python tests/specs/discord/extract.py path/to/discord-api-spec/specs/openapi.json

writes ``openapi-subset.json`` beside this file: the operations below, with every
component they reference (transitively), unchanged. See README.md for the source.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: (method, path) of every operation coachgate's client performs, plus those discord.py's
#: ``login()`` needs (``GET /oauth2/applications/@me``). ``POST /oauth2/token`` is not in
#: Discord's document (it is form-encoded OAuth2, outside the REST API description).
OPERATIONS = (
    ("get", "/users/@me"),
    ("post", "/users/@me/channels"),
    ("get", "/users/{user_id}"),
    ("get", "/guilds/{guild_id}"),
    ("get", "/guilds/{guild_id}/channels"),
    ("post", "/guilds/{guild_id}/channels"),
    ("get", "/guilds/{guild_id}/roles"),
    ("post", "/guilds/{guild_id}/roles"),
    ("delete", "/guilds/{guild_id}/roles/{role_id}"),
    ("get", "/guilds/{guild_id}/members/{user_id}"),
    ("put", "/guilds/{guild_id}/members/{user_id}"),
    ("put", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"),
    ("delete", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"),
    ("get", "/channels/{channel_id}"),
    ("patch", "/channels/{channel_id}"),
    ("delete", "/channels/{channel_id}"),
    ("put", "/channels/{channel_id}/permissions/{overwrite_id}"),
    ("delete", "/channels/{channel_id}/permissions/{overwrite_id}"),
    ("post", "/channels/{channel_id}/messages"),
    ("get", "/oauth2/applications/@me"),
)


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
    components: dict[str, dict[str, Any]] = {}
    todo: set[str] = set()
    _refs(paths, todo)
    done: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in done:
            continue
        done.add(ref)
        _, section, name = ref.removeprefix("#/").split("/")
        node = doc["components"][section][name]
        components.setdefault(section, {})[name] = node
        _refs(node, todo)
    return {"openapi": doc["openapi"], "info": doc["info"], "servers": doc.get("servers", []),
            "paths": paths,
            "components": {s: dict(sorted(v.items())) for s, v in sorted(components.items())}}


def main(argv: list[str]) -> int:
    doc = json.loads(Path(argv[1]).read_text())
    out = Path(__file__).with_name("openapi-subset.json")
    out.write_text(json.dumps(subset(doc), indent=1, sort_keys=False) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
