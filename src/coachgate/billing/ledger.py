"""The double-entry ledger: who owes whom, entry by entry.

``record`` writes one journal entry and its lines in the caller's transaction. Its key is
unique in the database, so recording the same event twice (a retried run, a duplicate
webhook, two workers racing) leaves exactly one entry. Lines of an entry always sum to 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Sum

from .models import JournalEntry, LedgerLine

FEES = "platform:fees"
DEFERRED = "platform:deferred"


def student_account(user_id: int) -> str:
    return f"student:{user_id}"


def coach_account(coach_id: int) -> str:
    return f"coach:{coach_id}"


def gateway_account(name: str) -> str:
    return f"gateway:{name}"


class Unbalanced(ValueError):
    """An entry whose lines do not sum to zero: a bug, never stored."""


def record(key: str, kind: str, currency: str, lines: Iterable[tuple[str, int]], *,
           at: datetime, memo: str = "", session_id: int | None = None,
           booking_id: int | None = None, guarded: bool = False) -> JournalEntry | None:
    """Record an entry once. Returns it, or None when the key was recorded before (or the
    entry moves nothing).

    ``guarded``: the caller holds the lock that makes this key new (the settlement of a
    booking under its session's row lock), so no savepoint is spent on a duplicate; one
    would still fail the caller's transaction on the unique key."""
    merged: dict[str, int] = {}
    for account, amount in lines:
        merged[account] = merged.get(account, 0) + int(amount)
    if sum(merged.values()) != 0:
        raise Unbalanced(f"entry {key} does not balance: {merged}")
    nonzero = [(a, v) for a, v in merged.items() if v != 0]
    if not nonzero:
        return None
    fields = {"key": key, "kind": kind, "currency": currency, "at": at, "memo": memo[:200],
              "session_id": session_id, "booking_id": booking_id}
    try:
        if guarded:
            entry = JournalEntry.objects.create(**fields)
        else:
            with transaction.atomic():  # a savepoint: a duplicate leaves the caller's txn intact
                entry = JournalEntry.objects.create(**fields)
    except IntegrityError:
        if guarded:
            raise
        if JournalEntry.objects.filter(key=key).exists():
            return None
        raise
    LedgerLine.objects.bulk_create(
        LedgerLine(entry=entry, account=a, amount_minor=v, currency=currency, at=at)
        for a, v in nonzero)
    return entry


@dataclass(frozen=True)
class Entry:
    key: str
    kind: str
    currency: str
    lines: tuple[tuple[str, int], ...]
    memo: str = ""
    session_id: int | None = None
    booking_id: int | None = None


def record_many(entries: list[Entry], *, at: datetime) -> int:
    """Record many new entries in two statements (a settlement burst). For keys the caller
    knows are new (it holds the locks that make them so): a duplicate key fails the
    caller's transaction. Returns how many entries moved something."""
    rows: list[tuple[JournalEntry, list[tuple[str, int]]]] = []
    for e in entries:
        merged: dict[str, int] = {}
        for account, amount in e.lines:
            merged[account] = merged.get(account, 0) + int(amount)
        if sum(merged.values()) != 0:
            raise Unbalanced(f"entry {e.key} does not balance: {merged}")
        nonzero = [(a, v) for a, v in merged.items() if v != 0]
        if nonzero:
            rows.append((JournalEntry(key=e.key, kind=e.kind, currency=e.currency, at=at,
                                      memo=e.memo[:200], session_id=e.session_id,
                                      booking_id=e.booking_id), nonzero))
    if not rows:
        return 0
    JournalEntry.objects.bulk_create([entry for entry, _ in rows])  # pks come back
    LedgerLine.objects.bulk_create(
        LedgerLine(entry=entry, account=a, amount_minor=v, currency=entry.currency, at=at)
        for entry, lines in rows for a, v in lines)
    return len(rows)


def balance(account: str, currency: str, *, until: datetime | None = None,
            before: datetime | None = None) -> int:
    qs = LedgerLine.objects.filter(account=account, currency=currency)
    if until is not None:
        qs = qs.filter(at__lte=until)
    if before is not None:
        qs = qs.filter(at__lt=before)
    return int(qs.aggregate(total=Sum("amount_minor"))["total"] or 0)


def balances(prefix: str) -> dict[tuple[str, str], int]:
    """Every account starting with ``prefix`` (e.g. "coach:"), per currency."""
    rows = (LedgerLine.objects.filter(account__startswith=prefix)
            .values("account", "currency").annotate(total=Sum("amount_minor")))
    return {(r["account"], r["currency"]): int(r["total"] or 0) for r in rows}


@dataclass
class StatementLine:
    at: datetime
    kind: str
    key: str
    memo: str
    session_id: int | None
    amount_minor: int


@dataclass
class Statement:
    account: str
    currency: str
    start: datetime
    end: datetime
    opening_minor: int
    closing_minor: int
    earned_minor: int = 0
    paid_out_minor: int = 0
    lines: list[StatementLine] = field(default_factory=list)


def statement(account: str, currency: str, start: datetime, end: datetime) -> Statement:
    """An account's movements in [start, end): opening and closing balance, every line."""
    opening = balance(account, currency, before=start)
    rows = (LedgerLine.objects.filter(account=account, currency=currency, at__gte=start,
                                      at__lt=end)
            .select_related("entry").order_by("at", "pk"))
    out = Statement(account, currency, start, end, opening, opening)
    for line in rows:
        e = line.entry
        out.lines.append(StatementLine(line.at, e.kind, e.key, e.memo, e.session_id,
                                       line.amount_minor))
        out.closing_minor += line.amount_minor
        if e.kind == "payout":
            out.paid_out_minor -= line.amount_minor
        else:
            out.earned_minor += line.amount_minor
    return out


def statement_csv(st: Statement) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["at", "kind", "key", "session_id", "memo", "amount_minor", "currency"])
    w.writerow([st.start.isoformat(), "opening_balance", "", "", "", st.opening_minor,
                st.currency])
    for line in st.lines:
        w.writerow([line.at.isoformat(), line.kind, line.key, line.session_id or "",
                    _safe_cell(line.memo), line.amount_minor, st.currency])
    w.writerow([st.end.isoformat(), "closing_balance", "", "", "", st.closing_minor,
                st.currency])
    return buf.getvalue()


def _safe_cell(text: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
