"""Form fields for Django admin pages that store JSON: people edit a list of words as
words, a list of questions as rows of inputs and a policy as one input per key, each
checked by the domain's own parser (never raw JSON)."""

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


class IntakeRowsWidget(forms.Widget):
    """An offer's intake questions as rows of inputs (question, answer type, required,
    choices), the stored ones and three empty rows for new questions; a row whose question
    is left empty is dropped."""

    template_name = "admin/coachgate/intake_rows.html"
    spare_rows = 3

    def __init__(self, types: tuple[str, ...], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.types = types

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None
                    ) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        rows = value if isinstance(value, list) else _loads_list(value)
        shown = [{"label": str(r.get("label", "")), "type": str(r.get("type", "text")),
                  "required": bool(r.get("required")),
                  "choices": ", ".join(str(c) for c in r.get("choices") or [])}
                 for r in rows if isinstance(r, dict)]
        shown += [{"label": "", "type": "text", "required": False, "choices": ""}
                  ] * self.spare_rows
        context["widget"].update(rows=list(enumerate(shown)), types=self.types)
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for i in range(200):  # bounded: the rules allow far fewer questions
            if f"{name}-{i}-label" not in data:
                break
            label = str(data.get(f"{name}-{i}-label", "")).strip()
            if not label:
                continue
            row: dict[str, Any] = {"label": label,
                                   "type": str(data.get(f"{name}-{i}-type", "text")),
                                   "required": bool(data.get(f"{name}-{i}-required"))}
            choices = [c.strip() for c in str(data.get(f"{name}-{i}-choices", "")).split(",")]
            if row["type"] == "choice":
                row["choices"] = [c for c in choices if c]
            rows.append(row)
        return rows

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return f"{name}-0-label" not in data


def _loads_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except ValueError:
            return []
        return loaded if isinstance(loaded, list) else []
    return []


class IntakeFieldsField(forms.Field):
    """The intake questions edited through IntakeRowsWidget, checked by ``parse`` (the
    catalog's rule, which gives each question its stable key)."""

    def __init__(self, *, types: tuple[str, ...], parse: Callable[[Any], Any],
                 **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", IntakeRowsWidget(types))
        super().__init__(**kwargs)
        self.parse = parse

    def clean(self, value: Any) -> Any:
        try:
            return self.parse(value if isinstance(value, list) else [])
        except CoachgateError as exc:
            raise forms.ValidationError(exc.message) from None


class PolicyWidget(forms.Widget):
    """A policy (a flat JSON object) as one labelled input per key; an input left empty
    keeps the default. Numbers stay numbers, lists are typed separated by commas."""

    template_name = "admin/coachgate/policy_inputs.html"

    def __init__(self, keys: list[tuple[str, str]], attrs: dict[str, Any] | None = None
                 ) -> None:
        super().__init__(attrs)
        self.keys = keys

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None
                    ) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        stored = value if isinstance(value, dict) else {}
        if isinstance(value, str):
            try:
                loaded = json.loads(value)
                stored = loaded if isinstance(loaded, dict) else {}
            except ValueError:
                stored = {}

        def shown(v: Any) -> str:
            if v is None:
                return ""
            if isinstance(v, list | tuple):
                return ", ".join(str(x) for x in v)
            return str(v)

        context["widget"]["inputs"] = [(key, label, shown(stored.get(key)))
                                       for key, label in self.keys]
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, _label in self.keys:
            raw = str(data.get(f"{name}-{key}", "")).strip()
            if raw:
                out[key] = _scalar_or_list(raw)
        return out

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return not any(f"{name}-{key}" in data for key, _ in self.keys)


def _scalar_or_list(raw: str) -> Any:
    if "," in raw:
        return [_scalar_or_list(part.strip()) for part in raw.split(",") if part.strip()]
    try:
        return int(raw)
    except ValueError:
        return raw  # ratios ("1/3") and names ("archive") are text


class PolicyField(forms.Field):
    """A policy edited through PolicyWidget, checked by ``parse`` (the catalog's rule)."""

    def __init__(self, *, keys: list[tuple[str, str]], parse: Callable[[Any], Any],
                 **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", PolicyWidget(keys))
        super().__init__(**kwargs)
        self.parse = parse

    def clean(self, value: Any) -> Any:
        data = value if isinstance(value, dict) else {}
        try:
            self.parse(data)
        except CoachgateError as exc:
            raise forms.ValidationError(exc.message) from None
        return data
