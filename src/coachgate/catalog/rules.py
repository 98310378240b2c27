"""Pure catalog rules: offer field validation, intake fields and answers, policies.

No I/O and no clock here. Problems are raised as InvalidInput with the offending field.
"""

from __future__ import annotations

import re
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


def validate_offer_fields(data: dict[str, Any]) -> None:
    """Business checks on offer fields (types were checked by the caller's schema)."""
    if "title" in data and not str(data["title"]).strip():
        raise _bad("title", "The title cannot be empty.")
    if "price_minor" in data and data["price_minor"] < 0:
        raise _bad("price_minor", "The price cannot be negative.")
    if "currency" in data and not is_currency(data["currency"]):
        raise _bad("currency", f"'{data['currency']}' is not an ISO 4217 currency code.")
    if "duration_minutes" in data and not 1 <= data["duration_minutes"] <= 1440:
        raise _bad("duration_minutes", "The duration must be between 1 and 1440 minutes.")
    for name in ("capacity", "pack_size"):
        if name in data and data[name] < 1:
            raise _bad(name, f"{name} must be at least 1.")
    if "horizon_days" in data and not 1 <= data["horizon_days"] <= 730:
        raise _bad("horizon_days", "The horizon must be between 1 and 730 days.")
    if data.get("slot_step_minutes") is not None and data["slot_step_minutes"] < 1:
        raise _bad("slot_step_minutes", "The slot step must be at least 1 minute.")
    if data.get("max_sessions_per_day") is not None and data["max_sessions_per_day"] < 1:
        raise _bad("max_sessions_per_day", "The daily cap must be at least 1 (or empty).")
    for name in ("buffer_before_minutes", "buffer_after_minutes", "min_notice_minutes",
                 "free_cancellation_hours"):
        if name in data and data[name] < 0:
            raise _bad(name, f"{name} cannot be negative.")


# --- intake fields --------------------------------------------------------------------

def normalize_intake_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate intake field definitions and give each a stable key."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, raw in enumerate(fields):
        label = str(raw.get("label", "")).strip()
        if not label:
            raise _bad(f"intake_fields[{i}].label", "Every intake field needs a label.")
        ftype = raw.get("type", "text")
        if ftype not in INTAKE_TYPES:
            raise _bad(
                f"intake_fields[{i}].type",
                f"Unknown intake field type '{ftype}'; use one of {', '.join(INTAKE_TYPES)}.",
            )
        key = str(raw.get("key") or _KEY.sub("_", label.lower()).strip("_") or f"field_{i}")
        if key in seen:
            raise _bad(f"intake_fields[{i}].key", f"Two intake fields share the key '{key}'.")
        seen.add(key)
        item: dict[str, Any] = {
            "key": key, "label": label, "type": ftype, "required": bool(raw.get("required")),
        }
        if ftype == "choice":
            choices = [str(c) for c in raw.get("choices") or []]
            if not choices:
                raise _bad(f"intake_fields[{i}].choices", "A choice field needs choices.")
            item["choices"] = choices
        out.append(item)
    return out


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
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems[key] = f"'{f['label']}' must be a number."
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


def parse_access_policy(data: dict[str, Any] | None) -> AccessPolicy:
    data = dict(data or {})
    base = AccessPolicy()
    unknown = set(data) - set(base.as_dict())
    if unknown:
        raise _bad("access_policy", f"Unknown access policy keys: {', '.join(sorted(unknown))}.")
    try:
        policy = AccessPolicy(
            grant_before_s=int(data.get("grant_before_s", base.grant_before_s)),
            provision_before_s=(
                None if data.get("provision_before_s") is None
                else int(data["provision_before_s"])
            ),
            join_window_before_s=int(data.get("join_window_before_s", base.join_window_before_s)),
            reminders_before_s=tuple(
                sorted((int(x) for x in data.get("reminders_before_s", base.reminders_before_s)),
                       reverse=True)
            ),
            revoke_after_s=int(data.get("revoke_after_s", base.revoke_after_s)),
            end_action=str(data.get("end_action", base.end_action)),
            discord_mode=str(data.get("discord_mode", base.discord_mode)),
        )
    except (TypeError, ValueError):
        raise _bad("access_policy", "Access policy durations must be whole seconds.") from None
    numbers = [policy.grant_before_s, policy.join_window_before_s, policy.revoke_after_s,
               *policy.reminders_before_s]
    if policy.provision_before_s is not None:
        numbers.append(policy.provision_before_s)
        if policy.provision_before_s < policy.grant_before_s:
            raise _bad("access_policy.provision_before_s",
                       "The channel must be provisioned no later than access is granted.")
    if any(n < 0 for n in numbers):
        raise _bad("access_policy", "Access policy durations cannot be negative.")
    if policy.end_action not in ("delete", "archive"):
        raise _bad("access_policy.end_action", "end_action is 'delete' or 'archive'.")
    if policy.discord_mode not in _DISCORD_MODES:
        raise _bad("access_policy.discord_mode",
                   f"discord_mode is one of {', '.join(_DISCORD_MODES)}.")
    return policy


def _ratio(value: Any, name: str) -> Fraction:
    try:
        r = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise _bad(f"money_policy.{name}", f"{name} must be a fraction like 1/3 or 0.5.") from None
    if not 0 <= r <= 1:
        raise _bad(f"money_policy.{name}", f"{name} must be between 0 and 1.")
    return r


def parse_money_policy(data: dict[str, Any] | None) -> MoneyPolicy:
    data = dict(data or {})
    base = MoneyPolicy()
    unknown = set(data) - set(base.as_dict())
    if unknown:
        raise _bad("money_policy", f"Unknown money policy keys: {', '.join(sorted(unknown))}.")
    wait = str(data.get("no_show_wait_ratio", base.no_show_wait_ratio))
    payable = str(data.get("min_payable_ratio", base.min_payable_ratio))
    if _ratio(wait, "no_show_wait_ratio") > _ratio(payable, "min_payable_ratio"):
        raise _bad("money_policy", "The no-show wait cannot exceed the minimum payable time.")
    return MoneyPolicy(no_show_wait_ratio=wait, min_payable_ratio=payable)
