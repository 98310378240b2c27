"""Read Django admin pages as data, so that assertions name the row and the column they
mean (a bare substring of the page also matches column headers, filters and empty lists).

Django's admin marks every cell of a changelist row and of a tabular inline with
``class="field-<name>"`` and every field of a change form with ``form-row field-<name>``.
"""

from __future__ import annotations

from html.parser import HTMLParser

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
         "source", "track", "wbr"}


def _field_name(attrs: list[tuple[str, str | None]]) -> str | None:
    for key, value in attrs:
        if key == "class" and value:
            for cls in value.split():
                if cls.startswith("field-"):
                    return cls.removeprefix("field-")
    return None


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict[str, str]] = []
        self.fields: dict[str, str] = {}
        self._row: dict[str, str] | None = None
        self._cell: tuple[str, int, list[str], bool] | None = None  # name, depth, text, in row
        self._depth = 0
        self._label = 0  # inside a field's <label> (its name, not its value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        self._depth += 1
        if tag == "label":
            self._label += 1
        if tag == "tr":
            # An inline's template for a new row ("empty-form") is no row of data.
            classes = " ".join(v or "" for k, v in attrs if k == "class").split()
            self._row = None if "empty-form" in classes else {}
        if self._cell is None and tag in ("td", "th", "div"):
            name = _field_name(attrs)
            if name is not None:
                self._cell = (name, self._depth, [], tag in ("td", "th"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if tag == "label":
            self._label = max(0, self._label - 1)
        if self._cell is not None and self._depth == self._cell[1]:
            name, _, text, in_row = self._cell
            value = " ".join(" ".join(text).split())
            if in_row and self._row is not None:
                self._row[name] = value
            elif not in_row:
                self.fields[name] = value
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row:
                self.rows.append(self._row)
            self._row = None
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._label:
            self._cell[2].append(data)


def table_rows(html: str) -> list[dict[str, str]]:
    """Every table row with admin field cells (changelist rows, inline rows), as
    {field name: visible text}; an inline's template for a new row is left out."""
    parser = _Parser()
    parser.feed(html)
    return parser.rows


def form_fields(html: str) -> dict[str, str]:
    """The change form's fields (readonly ones included) as {field name: visible text},
    without their labels."""
    parser = _Parser()
    parser.feed(html)
    return parser.fields
