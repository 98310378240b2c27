"""Form fields for Django admin pages that store JSON: people edit a list of words as
words, and structured JSON as indented text that is checked by the domain's own parser."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms

from .errors import CoachgateError


class TagListField(forms.CharField):
    """A list of short strings, edited as comma-separated words ("python, chess")."""

    def __init__(self, *, max_items: int = 20, max_length_each: int = 60,
                 **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Comma-separated, e.g. “python, interview practice”.")
        super().__init__(**kwargs)
        self.max_items, self.max_length_each = max_items, max_length_each

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        if isinstance(value, str) and value.startswith("["):
            try:  # a bound form shows what was stored, never its JSON
                return ", ".join(str(v) for v in json.loads(value))
            except (ValueError, TypeError):
                return value
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]  # a list, not a str
        if isinstance(value, list):
            items = [str(v).strip() for v in value]
        else:
            items = [part.strip() for part in str(value or "").split(",")]
        items = list(dict.fromkeys(i for i in items if i))  # no blanks, no repeats
        if len(items) > self.max_items:
            raise forms.ValidationError(f"At most {self.max_items} items.")
        if any(len(i) > self.max_length_each for i in items):
            raise forms.ValidationError(f"Each item is at most {self.max_length_each} "
                                        "characters.")
        return items

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")


class PrettyJSONField(forms.JSONField):
    """JSON shown indented in a roomy text box, and checked by ``parse`` (a domain rule
    that raises CoachgateError with a message a person understands)."""

    def __init__(self, *, parse: Callable[[Any], Any] | None = None,
                 empty: Callable[[], Any] = dict, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 8, "cols": 70,
                                                          "class": "vLargeTextField",
                                                          "spellcheck": "false"}))
        super().__init__(**kwargs)
        self.parse, self.empty = parse, empty

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        return self.empty() if value is None else value  # a blank box: nothing set

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)

    def validate(self, value: Any) -> None:
        super().validate(value)
        if self.parse is not None:
            try:
                self.parse(value)
            except CoachgateError as exc:
                raise forms.ValidationError(exc.message) from None
