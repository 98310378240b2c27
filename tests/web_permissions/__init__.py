"""Page permission rows, one module per part of the web product (tests/test_permissions.py
adds every module's ROWS to its WEB_TABLE, so each section lists its own routes).

A row is (method, path, form data, answers), the answers for the roles in
tests/test_permissions.ROLES order: anon, student, stranger, coach, other_coach, admin.
An answer is a status, or where a 302 leads (with the message level and, after " | ",
words the message contains). Path placeholders: {offer} {draft} {session} {app}
{override} {token} {coach_id} (tests/test_permissions.world).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

Row = tuple[str, str, dict[str, Any], tuple[Any, ...]]


def login(path: str) -> str:
    return f"/accounts/login/?next={path}"


ALL_405, ALL_200, ALL_404 = (405,) * 6, (200,) * 6, (404,) * 6
# Signed in: 200; anonymous: sent to the login page first.
SIGNED_IN_200 = (200,) * 5
COACH_ONLY_PAGE = (403, 403, 200, 200, 403)  # student, stranger, coach, other_coach, admin
ADMIN_ONLY_PAGE = (403, 403, 403, 403, 200)


def all_rows() -> list[Row]:
    rows: list[Row] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        rows.extend(module.ROWS)
    return rows
