"""Form fields the profile and the application share: text without control characters, and
specialties as a tag input: a ``<select multiple>`` that tom-select turns into tags a person
can type (web/static/web/tags.js). The server receives a list (one value per tag; a value
may also hold several tags separated by commas, which is what the no-JavaScript text box
sends) and checks every tag."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

MAX_TAGS = 12
MAX_TAG_LENGTH = 40


def no_control_chars(value: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError("This may not contain control characters.")


def no_control_chars_but_lines(value: str) -> None:
    """For multi-line text: line breaks and tabs are fine, other control characters not."""
    if any((ord(c) < 32 and c not in "\n\r\t") or ord(c) == 127 for c in value):
        raise ValidationError("This may not contain control characters.")


def clean_tags(values: Iterable[str]) -> list[str]:
    """Trimmed tags, duplicates (ignoring case) dropped, each 1–40 characters without
    control characters, at most 12; ValidationError naming the first problem."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        for part in str(value).split(","):
            tag = " ".join(part.split())  # trimmed, inner runs of spaces as one
            if not tag:
                continue
            if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in part):
                raise ValidationError("A specialty may not contain control characters.")
            if len(tag) > MAX_TAG_LENGTH:
                raise ValidationError(
                    f"“{tag[:MAX_TAG_LENGTH]}…” is longer than {MAX_TAG_LENGTH} characters.")
            if tag.casefold() not in seen:
                seen.add(tag.casefold())
                out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValidationError(f"At most {MAX_TAGS} specialties ({len(out)} given).")
    return out


class TagsWidget(forms.SelectMultiple):
    """The current tags as the selected options; tom-select adds new ones as you type
    (without JavaScript, a text box beside it takes new ones, separated by commas)."""

    template_name = "web/_tags_widget.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"data-tags": str(MAX_TAGS), **(attrs or {})})

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        tags = [str(v) for v in (value or []) if str(v).strip()]
        self.choices = [(t, t) for t in tags]
        return super().get_context(name, tags, attrs)

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> Any:
        getlist = getattr(data, "getlist", None)
        if getlist is not None:
            return [str(v) for v in getlist(name)]
        raw = data.get(name)
        return [str(v) for v in raw] if isinstance(raw, list | tuple) else (
            [] if raw is None else [str(raw)])


class TagsField(forms.Field):
    widget = TagsWidget

    def to_python(self, value: Any) -> list[str]:
        if value in (None, ""):
            return []
        values = value if isinstance(value, list | tuple) else [value]
        return clean_tags(str(v) for v in values)

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
