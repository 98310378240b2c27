"""Reading billing: outcome states for pages, settlements, balances, statements, payouts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from django.db import transaction
from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth

from coachgate.accounts.models import User
from coachgate.catalog.models import CoachProfile
from coachgate.kit import clock
from coachgate.kit.errors import (
    AlreadySettled,
    Forbidden,
    InvalidInput,
    NotFound,
)
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.lifecycle import TERMINAL
from coachgate.scheduling.models import Session

from .. import ledger, rules
from ..models import (
    JournalEntry,
    LedgerLine,
    Settlement,
)
from ..rules import Outcome
from ._common import thresholds_of
from .outcomes import _is_coach
from .settlement import _OUTCOME_TEXT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutcomeState:
    """What billing says about one session for one viewer: the viewer's own settlement as
    words (students only), and when the no-show wait ends (None once it is settled or
    before it started). The sessions page turns it into buttons (web.outcomes)."""
    settled: str = ""
    no_show_from: datetime | None = None


def outcome_states(actor: User, sessions: list[Session], now: datetime
                   ) -> dict[int, OutcomeState]:
    from coachgate.kit.money import format_amount

    settled = {s.session_id: s for s in Settlement.objects.filter(
        session__in=sessions).filter(student=actor)} if not actor.is_coach else {}
    out: dict[int, OutcomeState] = {}
    for session in sessions:
        mine = settled.get(session.pk)
        text = (f"{_OUTCOME_TEXT[Outcome(mine.outcome)]}: charged "
                f"{format_amount(mine.charge_minor, mine.currency)}") if mine else ""
        open_ = session.status not in TERMINAL and now >= session.starts_at
        out[session.pk] = OutcomeState(
            settled=text,
            no_show_from=(rules.no_show_allowed_from(session.starts_at, thresholds_of(session))
                          if open_ else None))
    return out


def settlements_of(actor: User, session_id: int) -> list[Settlement]:
    session = scheduling.get_session(actor, session_id)
    qs = Settlement.objects.filter(session=session).order_by("pk")
    if not (actor.is_admin or _is_coach(actor, session)):
        qs = qs.filter(student=actor)
    return list(qs)


# --- balances, statements, payouts ------------------------------------------------------------


def _coach_for(actor: User, coach_id: int) -> CoachProfile:
    coach = CoachProfile.objects.filter(pk=coach_id).first()
    if coach is None or not (actor.is_admin or coach.user_id == actor.pk):
        raise NotFound("No such coach.")
    return coach


def coach_balances(actor: User, coach_id: int) -> dict[str, int]:
    """What the platform owes the coach, per currency (earned and not yet paid out)."""
    coach = _coach_for(actor, coach_id)
    account = ledger.coach_account(coach.pk)
    return {cur: total for (acc, cur), total in ledger.balances(account).items()
            if acc == account}


def coach_statement(actor: User, coach_id: int, *, start: datetime, end: datetime,
                    currency: str) -> ledger.Statement:
    coach = _coach_for(actor, coach_id)
    start, end = clock.require_aware(start, "from"), clock.require_aware(end, "to")
    if end <= start:
        raise InvalidInput("'to' must be after 'from'.", details={"field": "to"})
    if end - start > timedelta(days=366):
        raise InvalidInput("A statement covers at most 366 days.", details={"field": "to"})
    return ledger.statement(ledger.coach_account(coach.pk), currency, start, end)


def record_payout(actor: User, coach_id: int, *, currency: str, amount_minor: int,
                  reference: str, now: datetime | None = None) -> JournalEntry:
    """An admin records money paid out to a coach (outside coachgate, or by the gateway's
    payouts). Never more than the coach's balance; once per reference."""
    now = now or clock.now()
    if not actor.is_admin:
        raise Forbidden("Only admins record payouts.")
    coach = _coach_for(actor, coach_id)
    if amount_minor <= 0:
        raise InvalidInput("A payout is a positive amount.", details={"field": "amount_minor"})
    reference = reference.strip()
    if not reference:
        raise InvalidInput("Give the payout's reference (bank transfer id, ...).",
                           details={"field": "reference"})
    account = ledger.coach_account(coach.pk)
    with transaction.atomic(durable=True):
        # One payout at a time per coach: the balance check and the entry are one step.
        CoachProfile.objects.select_for_update().filter(pk=coach.pk).first()
        if JournalEntry.objects.filter(key=f"payout:{coach.pk}:{reference}"[:80]).exists():
            raise AlreadySettled("A payout with this reference is already recorded.")
        owed = ledger.balance(account, currency)
        if amount_minor > owed:
            raise InvalidInput(f"The coach is owed {owed} in {currency}; a payout cannot be "
                               "larger.", details={"field": "amount_minor", "owed_minor": owed})
        entry = ledger.record(f"payout:{coach.pk}:{reference}"[:80], "payout", currency, [
            (account, -amount_minor), (ledger.gateway_account("payouts"), amount_minor)],
            at=now, memo=f"payout {reference}"[:200])
        if entry is None:  # unreachable: the key was checked above, under the coach's lock
            raise AlreadySettled("A payout with this reference is already recorded.")
        return entry


def statement_document(coach_id: int, st: ledger.Statement) -> dict[str, Any]:
    """A statement as the API's JSON answers it (billing.api.StatementOut); the dashboard's
    JSON download is this same document."""
    return {"coach_id": coach_id, "currency": st.currency, "start": st.start, "end": st.end,
            "opening_minor": st.opening_minor, "earned_minor": st.earned_minor,
            "paid_out_minor": st.paid_out_minor, "closing_minor": st.closing_minor,
            "lines": [vars(line) for line in st.lines]}


# --- the coach dashboard's reads ----------------------------------------------------------


def describe_outcome(outcome: str) -> str:
    """A settlement's outcome in words ("completed", "student no-show", ...)."""
    try:
        return _OUTCOME_TEXT[Outcome(outcome)]
    except ValueError:
        return outcome.replace("_", " ")


def coach_settlements(actor: User, sessions: list[Session]) -> dict[int, list[Settlement]]:
    """The settlements of the actor's own sessions among ``sessions``, per session (one
    query): each holds the coach's payout."""
    out: dict[int, list[Settlement]] = {s.pk: [] for s in sessions}
    for s in (Settlement.objects.filter(session__in=[x.pk for x in sessions],
                                        coach__user=actor).order_by("pk")):
        out[s.session_id].append(s)
    return out


@dataclass(frozen=True)
class PeriodEarnings:
    month: datetime  # the first instant of the month, in the zone asked for
    currency: str
    settlements: int
    charged_minor: int
    fee_minor: int
    payout_minor: int


def earnings_by_month(actor: User, coach_id: int, *, tz: tzinfo, since: datetime
                      ) -> list[PeriodEarnings]:
    """Settlements of the coach per calendar month (in ``tz``) and currency, from ``since``,
    the latest month first: one aggregate query."""
    coach = _coach_for(actor, coach_id)
    rows = (Settlement.objects.filter(coach=coach, settled_at__gte=since)
            .annotate(month=TruncMonth("settled_at", tzinfo=tz))
            .values("month", "currency")
            .annotate(n=Count("pk"), charged=Sum("charge_minor"), fee=Sum("fee_minor"),
                      payout=Sum("payout_minor"))
            .order_by("-month", "currency"))
    return [PeriodEarnings(r["month"], r["currency"], r["n"], int(r["charged"] or 0),
                           int(r["fee"] or 0), int(r["payout"] or 0)) for r in rows]


@dataclass(frozen=True)
class PayoutLine:
    at: datetime
    currency: str
    amount_minor: int
    reference: str


def coach_payouts(actor: User, coach_id: int, *, limit: int = 50) -> list[PayoutLine]:
    """The payouts recorded for the coach, the latest first (at most ``limit``)."""
    coach = _coach_for(actor, coach_id)
    lines = (LedgerLine.objects.filter(account=ledger.coach_account(coach.pk),
                                       entry__kind="payout")
             .select_related("entry").order_by("-at", "-pk")[:limit])
    return [PayoutLine(line.at, line.currency, -line.amount_minor,
                       line.entry.memo.removeprefix("payout ")) for line in lines]


def coach_currencies(actor: User, coach_id: int) -> list[str]:
    """Every currency the coach's ledger account has moved in (for the statement form)."""
    coach = _coach_for(actor, coach_id)
    return sorted(set(LedgerLine.objects.filter(account=ledger.coach_account(coach.pk))
                      .values_list("currency", flat=True).distinct()))
