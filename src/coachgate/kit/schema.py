"""Types for API input schemas.

Pydantic's lax mode turns ``"5000"``, ``5000.0`` and ``true`` into the integer 5000 or 1:
money and counts in a JSON body are JSON integers only, so every integer field of an input
schema is a ``JsonInt``. Query and path parameters arrive as strings and stay plain ``int``
(tests/test_http_hardening.py checks every input schema of /api/v1 for a lax integer).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Strict

JsonInt = Annotated[int, Strict()]
