"""Pure catalog rules: offer field validation, intake fields and answers, policies.

No I/O and no clock here. Problems are raised as InvalidInput with the offending field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from coachgate.kit.errors import InvalidInput
from coachgate.kit.money import is_currency

INTAKE_TYPES = ("text", "textarea", "number", "email", "url", "choice", "checkbox")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s]+$")
_KEY = re.compile(r"[^a-z0-9]+")

OFFER_TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"published", "archived"}),
    "published": frozenset({"archived"}),
    "archived": frozenset(),
}


def check_offer_transition(current: str, target: str) -> None:
    if target not in OFFER_TRANSITIONS.get(current, frozenset()):
        raise InvalidInput(
            f"An offer cannot go from {current} to {target}.",
            details={"field": "status", "from": current, "to": target},
        )


def _bad(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field_name})


# Integer offer fields and their bounds (None: the field may be empty). The API schemas
# carry the same bounds; checking here too means no other caller (the admin, a script)
# can store what the API refuses.
MIN_SLOT_STEP_MINUTES = 5
OFFER_INT_BOUNDS: dict[str, tuple[int, int, bool]] = {
    "price_minor": (0, 10**12, False),
    "duration_minutes": (1, 1440, False),
    "capacity": (1, 500, False),
    "pack_size": (1, 100, False),
    "buffer_before_minutes": (0, 720, False),
    "buffer_after_minutes": (0, 720, False),
    "min_notice_minutes": (0, 60 * 24 * 60, False),
    "horizon_days": (1, 730, False),
    "max_sessions_per_day": (1, 96, True),
    "slot_step_minutes": (MIN_SLOT_STEP_MINUTES, 1440, True),
    "free_cancellation_hours": (0, 24 * 60, False),
}


# The generated card styles an offer without an uploaded picture is shown in (the web's
# offers.css draws them), and the name catalog.thumbnails gives a stored picture.
CARD_STYLES = ("ocean", "sunset", "forest", "violet", "slate")
THUMBNAIL_NAME = re.compile(r"[0-9a-f]{32}\.jpg")


def validate_offer_fields(data: dict[str, Any]) -> None:
    """Business checks on offer fields, whoever the caller."""
    if "card_style" in data and data["card_style"] not in CARD_STYLES:
        raise _bad("card_style", f"card_style is one of {', '.join(CARD_STYLES)}.")
    if "thumbnail" in data and not (
            data["thumbnail"] == "" or (isinstance(data["thumbnail"], str)
                                        and THUMBNAIL_NAME.fullmatch(data["thumbnail"]))):
        raise _bad("thumbnail", "thumbnail is the name of a stored picture, or empty.")
    for name, (low, high, nullable) in OFFER_INT_BOUNDS.items():
        if name not in data or (nullable and data[name] is None):
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(name, f"{name} must be a whole number.")
        if not low <= value <= high:
            raise _bad(name, f"{name} must be between {low} and {high}"
                             f"{' (or empty)' if nullable else ''}.")
    if "title" in data and not str(data["title"]).strip():
        raise _bad("title", "The title cannot be empty.")
    if "currency" in data and not (isinstance(data["currency"], str)
                                   and is_currency(data["currency"])):
        raise _bad("currency",
                   f"'{str(data['currency'])[:8]}' is not an ISO 4217 currency code.")


def clean_offer_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Offer fields checked and normalized (intake keys, policies with their defaults).

    The one validation of offer fields, used by the services and by the model's clean()
    (the admin), so no caller stores what the API would refuse.
    """
    validate_offer_fields(data)
    clean = dict(data)
    if "intake_fields" in clean:
        clean["intake_fields"] = normalize_intake_fields(clean["intake_fields"] or [])
    if "access_policy" in clean:
        clean["access_policy"] = parse_access_policy(clean["access_policy"]).as_dict()
    if "money_policy" in clean:
        clean["money_policy"] = parse_money_policy(clean["money_policy"]).as_dict()
    return clean


# --- intake fields --------------------------------------------------------------------

MAX_INTAKE_FIELDS = 30
MAX_INTAKE_CHOICES = 50
_MAX_LABEL = 200
_MAX_INTAKE_KEY = 60


def normalize_intake_fields(fields: Any) -> list[dict[str, Any]]:
    """Validate intake field definitions (any JSON value) and give each a stable key."""
    if not isinstance(fields, list) or len(fields) > MAX_INTAKE_FIELDS:
        raise _bad("intake_fields", f"intake_fields is a list of at most {MAX_INTAKE_FIELDS} "
                                    "fields.")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(fields):
        if not isinstance(raw, dict):
            raise _bad(f"intake_fields[{i}]", "Every intake field is a JSON object.")
        label = raw.get("label", "")
        label = label.strip() if isinstance(label, str) else ""
        if not label or len(label) > _MAX_LABEL:
            raise _bad(f"intake_fields[{i}].label",
                       f"Every intake field needs a label of at most {_MAX_LABEL} characters.")
        ftype = raw.get("type", "text")
        if not isinstance(ftype, str) or ftype not in INTAKE_TYPES:
            raise _bad(
                f"intake_fields[{i}].type",
                f"Unknown intake field type; use one of {', '.join(INTAKE_TYPES)}.",
            )
        given_key = raw.get("key")
        if given_key is not None and not isinstance(given_key, str):
            raise _bad(f"intake_fields[{i}].key", "An intake field's key is text.")
        key = given_key or (_KEY.sub("_", label.lower()).strip("_")
                            or f"field_{i}")[:_MAX_INTAKE_KEY]
        if len(key) > _MAX_INTAKE_KEY:
            raise _bad(f"intake_fields[{i}].key",
                       f"An intake field's key has at most {_MAX_INTAKE_KEY} characters.")
        if key in seen:
            raise _bad(f"intake_fields[{i}].key", f"Two intake fields share the key '{key}'.")
        seen.add(key)
        item: dict[str, Any] = {
            "key": key, "label": label, "type": ftype, "required": bool(raw.get("required")),
        }
        if ftype == "choice":
            choices = raw.get("choices") or []
            if (not isinstance(choices, list) or len(choices) > MAX_INTAKE_CHOICES
                    or not all(isinstance(c, str) and 0 < len(c) <= _MAX_LABEL
                               for c in choices)):
                raise _bad(f"intake_fields[{i}].choices",
                           f"choices is a list of at most {MAX_INTAKE_CHOICES} texts of at "
                           f"most {_MAX_LABEL} characters.")
            if not choices:
                raise _bad(f"intake_fields[{i}].choices", "A choice field needs choices.")
            item["choices"] = list(choices)
        out.append(item)
    return out


MAX_INTAKE_NUMBER = 10**15


def validate_intake_answers(
    fields: list[dict[str, Any]], answers: dict[str, Any]
) -> dict[str, Any]:
    """Check a student's answers against the offer's intake fields; return clean answers."""
    problems: dict[str, str] = {}
    clean: dict[str, Any] = {}
    known = {f["key"] for f in fields}
    for key in answers:
        if key not in known:
            problems[key] = "This offer does not ask for this field."
    for f in fields:
        key = f["key"]
        value = answers.get(key)
        empty = value is None or (isinstance(value, str) and not value.strip())
        if empty:
            if f["required"] and not (f["type"] == "checkbox" and value is False):
                problems[key] = f"'{f['label']}' is required."
            continue
        ftype = f["type"]
        if ftype in ("text", "textarea", "email", "url", "choice"):
            if not isinstance(value, str):
                problems[key] = f"'{f['label']}' must be text."
                continue
            value = value.strip()
            limit = 5000 if ftype == "textarea" else 500
            if len(value) > limit:
                problems[key] = f"'{f['label']}' is longer than {limit} characters."
            elif ftype == "email" and not _EMAIL.match(value):
                problems[key] = f"'{f['label']}' must be an email address."
            elif ftype == "url" and not _URL.match(value):
                problems[key] = f"'{f['label']}' must be an http(s) address."
            elif ftype == "choice" and value not in f["choices"]:
                problems[key] = f"'{f['label']}' must be one of: {', '.join(f['choices'])}."
        elif ftype == "number":
            # Finite and bounded: JSON allows Infinity/NaN literals and huge integers, which
            # PostgreSQL's jsonb refuses and nobody means as an answer.
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not (isinstance(value, int) or math.isfinite(value))
                    or abs(value) > MAX_INTAKE_NUMBER):
                problems[key] = f"'{f['label']}' must be a number (at most 10^15 in size)."
        elif ftype == "checkbox":
            if not isinstance(value, bool):
                problems[key] = f"'{f['label']}' must be true or false."
            elif f["required"] and value is not True:
                problems[key] = f"'{f['label']}' must be checked."
        clean[key] = value
    if problems:
        raise InvalidInput("Some intake answers are not valid.", details={"fields": problems})
    return clean


# --- policies -------------------------------------------------------------------------

@dataclass(frozen=True)
class AccessPolicy:
    """When access to a session opens and closes, relative to its start and end.

    Durations are seconds so tests and the demo can run a lifecycle in a minute.
    """

    grant_before_s: int = 2 * 3600
    provision_before_s: int | None = None  # None: provision together with the grant
    join_window_before_s: int = 5 * 60
    reminders_before_s: tuple[int, ...] = (24 * 3600, 15 * 60)
    revoke_after_s: int = 3600
    end_action: str = "delete"  # or "archive"
    discord_mode: str = "member_overwrites"  # or "session_role", "offer_role"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reminders_before_s"] = list(self.reminders_before_s)
        return d


@dataclass(frozen=True)
class MoneyPolicy:
    no_show_wait_ratio: str = "1/3"
    min_payable_ratio: str = "2/3"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"no_show_wait_ratio": self.no_show_wait_ratio,
                "min_payable_ratio": self.min_payable_ratio}


_DISCORD_MODES = ("member_overwrites", "session_role", "offer_role")
_END_ACTIONS = ("delete", "archive")

# Bounds a coach could mean: every duration of an access policy is at most 30 days (the
# date arithmetic that follows stays far from datetime's limits), and a session has at
# most a handful of reminders. See docs/configuration.md, "Offer bounds".
MAX_POLICY_SECONDS = 30 * 24 * 3600
MAX_REMINDERS = 5
_DURATION_KEYS = ("grant_before_s", "provision_before_s", "join_window_before_s",
                  "revoke_after_s")
# A ratio is a short decimal ("0.25", ".5") or a short fraction ("1/3"): parsing stays
# cheap whatever is stored ("1e-999999999" would make Fraction build a gigantic integer).
_RATIO_TEXT = re.compile(r"(?:0?\.[0-9]{1,6}|[0-9]{1,6}/[0-9]{1,6})")
_MAX_RATIO_TEXT = 13


def _keys_of(data: Any, name: str, known: Iterable[str]) -> dict[str, Any]:
    """``data`` as a policy dict (None: the defaults); anything else is invalid input."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _bad(name, f"{name} must be a JSON object.")
    allowed = set(known)
    unknown = [k for k in data if k not in allowed]
    if unknown:
        shown = ", ".join(sorted(str(k)[:40] for k in unknown)[:5])
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise _bad(name, f"Unknown {name.replace('_', ' ')} keys: {shown}{more}.")
    return data


def _seconds(value: Any, field_name: str) -> int:
    # JSON integers only: a float (1e30, Infinity), a bool or a string is refused, so no
    # conversion can overflow, round or hang.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field_name, f"{field_name} must be a whole number of seconds.")
    if not 0 <= value <= MAX_POLICY_SECONDS:
        raise _bad(field_name, f"{field_name} must be between 0 and {MAX_POLICY_SECONDS} "
                               "seconds (30 days).")
    return value


def parse_access_policy(data: Any) -> AccessPolicy:
    """An offer's access policy from any JSON value (None: the defaults).

    Fast and safe on anything, including values already stored: it raises InvalidInput
    (naming the field) and nothing else.
    """
    base = AccessPolicy()
    data = _keys_of(data, "access_policy", base.as_dict())
    values: dict[str, Any] = {}
    for key in _DURATION_KEYS:
        raw = data.get(key, getattr(base, key))
        values[key] = None if raw is None and key == "provision_before_s" else _seconds(
            raw, f"access_policy.{key}")
    reminders = data.get("reminders_before_s", base.reminders_before_s)
    if not isinstance(reminders, list | tuple) or len(reminders) > MAX_REMINDERS:
        raise _bad("access_policy.reminders_before_s",
                   f"reminders_before_s is a list of at most {MAX_REMINDERS} durations.")
    values["reminders_before_s"] = tuple(sorted(
        {_seconds(x, "access_policy.reminders_before_s") for x in reminders}, reverse=True))
    for key, allowed in (("end_action", _END_ACTIONS), ("discord_mode", _DISCORD_MODES)):
        value = data.get(key, getattr(base, key))
        if not isinstance(value, str) or value not in allowed:
            raise _bad(f"access_policy.{key}", f"{key} is one of {', '.join(allowed)}.")
        values[key] = value
    policy = AccessPolicy(**values)
    if (policy.provision_before_s is not None
            and policy.provision_before_s < policy.grant_before_s):
        raise _bad("access_policy.provision_before_s",
                   "The channel must be provisioned no later than access is granted.")
    return policy


def _ratio(value: Any, name: str) -> tuple[str, Fraction]:
    """A ratio strictly between 0 and 1, as its text and its exact value."""
    field_name = f"money_policy.{name}"
    if isinstance(value, float) and math.isfinite(value):
        value = repr(value)  # a JSON number such as 0.25; 1e-05 is refused below
    text = value if isinstance(value, str) else ""
    if len(text) > _MAX_RATIO_TEXT or not _RATIO_TEXT.fullmatch(text):
        raise _bad(field_name, f"{name} must be a short fraction like 1/3 or a decimal like "
                               "0.25 (at most 6 digits).")
    try:
        ratio = Fraction(text)
    except ZeroDivisionError:
        raise _bad(field_name, f"{name} cannot divide by zero.") from None
    if not 0 < ratio < 1:
        raise _bad(field_name, f"{name} must be strictly between 0 and 1.")
    return text, ratio


def parse_money_policy(data: Any) -> MoneyPolicy:
    """An offer's money policy from any JSON value (None: the defaults).

    Fast and safe on anything, including values already stored: it raises InvalidInput
    (naming the field) and nothing else.
    """
    base = MoneyPolicy()
    data = _keys_of(data, "money_policy", base.as_dict())
    wait, wait_r = _ratio(data.get("no_show_wait_ratio", base.no_show_wait_ratio),
                          "no_show_wait_ratio")
    payable, payable_r = _ratio(data.get("min_payable_ratio", base.min_payable_ratio),
                                "min_payable_ratio")
    if wait_r > payable_r:
        raise _bad("money_policy", "The no-show wait cannot exceed the minimum payable time.")
    return MoneyPolicy(no_show_wait_ratio=wait, min_payable_ratio=payable)
