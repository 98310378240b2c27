"""Routes for outcomes, settlements, cards, statements, payouts and gateway webhooks.

Thin: services decide. No route writes a financial field: amounts come from the rules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status
from pydantic import AwareDatetime

from coachgate.accounts.auth import API_AUTH, current_user
from coachgate.kit.errors import InvalidInput
from coachgate.kit.money import is_currency
from coachgate.kit.schema import JsonInt
from coachgate.scheduling.api import SessionOut, _session_out

from . import ledger, services
from .models import Settlement

router = Router(tags=["billing"], auth=API_AUTH)


class SettlementOut(Schema):
    id: int
    booking_id: int
    session_id: int
    student_id: int
    outcome: str
    currency: str
    price_minor: int
    charge_minor: int
    fee_minor: int
    payout_minor: int
    prepaid: bool
    settled_at: datetime


def _settlement_out(s: Settlement) -> SettlementOut:
    return SettlementOut(id=s.pk, booking_id=s.booking_id, session_id=s.session_id,
                         student_id=s.student_id, outcome=s.outcome, currency=s.currency,
                         price_minor=s.price_minor, charge_minor=s.charge_minor,
                         fee_minor=s.fee_minor, payout_minor=s.payout_minor,
                         prepaid=bool(s.funded_by), settled_at=s.settled_at)


class OutcomeOut(SessionOut):
    settlements: list[SettlementOut]


def _outcome_out(request: HttpRequest, result: services.OutcomeResult) -> OutcomeOut:
    user = current_user(request)
    base = _session_out(user, result.session)
    visible = [s for s in result.settlements
               if user.is_admin or result.session.coach.user_id == user.pk
               or s.student_id == user.pk]
    return OutcomeOut(**base.model_dump(),
                      settlements=[_settlement_out(s) for s in visible])


class NoShowIn(Schema):
    student_id: JsonInt | None = Field(default=None, description="Needed in a group session.")


@router.post("/sessions/{session_id}/complete", response=OutcomeOut,
             summary="End the session now (coach): completed, or an early end before the "
                     "minimum payable time")
def complete(request: HttpRequest, session_id: int) -> OutcomeOut:
    return _outcome_out(request, services.complete(current_user(request), session_id))


@router.post("/sessions/{session_id}/no-show", response=OutcomeOut,
             summary="Mark a student absent (the session's coach, after the no-show wait)")
def no_show(request: HttpRequest, session_id: int, payload: NoShowIn | None = None
            ) -> OutcomeOut:
    student_id = payload.student_id if payload else None
    return _outcome_out(request, services.mark_student_no_show(
        current_user(request), session_id, student_id=student_id))


@router.post("/sessions/{session_id}/coach-no-show", response=OutcomeOut,
             summary="Report the coach absent (a student of the session, after the wait)")
def coach_no_show(request: HttpRequest, session_id: int) -> OutcomeOut:
    return _outcome_out(request, services.report_coach_no_show(current_user(request),
                                                               session_id))


class MeetingEventIn(Schema):
    kind: Literal["started", "ended", "joined"]
    at: AwareDatetime
    user_id: JsonInt | None = Field(default=None, description="Who joined (kind=joined).")


class EvidenceOut(Schema):
    session_id: int
    started_at: datetime | None
    ended_at: datetime | None


@router.post("/sessions/{session_id}/meeting-events", response=EvidenceOut,
             summary="Report meeting evidence (the session's coach or an admin)")
def meeting_event(request: HttpRequest, session_id: int, payload: MeetingEventIn
                  ) -> EvidenceOut:
    ev = services.record_meeting_event(current_user(request), session_id, kind=payload.kind,
                                       at=payload.at, user_id=payload.user_id)
    return EvidenceOut(session_id=session_id, started_at=ev.started_at, ended_at=ev.ended_at)


@router.get("/sessions/{session_id}/settlements", response=list[SettlementOut],
            summary="How the session was settled (students see their own booking)")
def settlements(request: HttpRequest, session_id: int) -> list[SettlementOut]:
    return [_settlement_out(s)
            for s in services.settlements_of(current_user(request), session_id)]


# --- cards ----------------------------------------------------------------------------


class CardOut(Schema):
    gateway: str
    status: str
    setup_ref: str
    client_secret: str = Field(description="For Stripe.js to finish the card setup.")
    publishable_key: str
    has_card: bool


@router.post("/billing/card", response=CardOut,
             summary="Start saving a card (Stripe: a SetupIntent for Stripe.js)")
def start_card(request: HttpRequest) -> CardOut:
    return CardOut(**vars(services.start_card_setup(current_user(request))))


@router.post("/billing/card/confirm", response=CardOut,
             summary="After the browser finished the setup: store the saved card")
def confirm_card(request: HttpRequest) -> CardOut:
    return CardOut(**vars(services.confirm_card_setup(current_user(request))))


# --- balances, statements, payouts ------------------------------------------------------


class BalanceOut(Schema):
    coach_id: int
    balances_minor: dict[str, int] = Field(description="Owed to the coach, per currency.")


@router.get("/coaches/{coach_id}/balance", response=BalanceOut,
            summary="What the coach is owed (the coach and admins)")
def balance(request: HttpRequest, coach_id: int) -> BalanceOut:
    return BalanceOut(coach_id=coach_id,
                      balances_minor=services.coach_balances(current_user(request), coach_id))


class StatementQuery(Schema):
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime
    currency: str = Field(min_length=3, max_length=3)
    format: Literal["json", "csv"] = "json"


class StatementLineOut(Schema):
    at: datetime
    kind: str
    key: str
    memo: str
    session_id: int | None
    amount_minor: int


class StatementOut(Schema):
    coach_id: int
    currency: str
    start: datetime
    end: datetime
    opening_minor: int
    earned_minor: int
    paid_out_minor: int
    closing_minor: int
    lines: list[StatementLineOut]


@router.get("/coaches/{coach_id}/statement", response=StatementOut,
            summary="Payout statement for a period (JSON, or CSV with format=csv)")
def statement(request: HttpRequest, coach_id: int, q: Query[StatementQuery]
              ) -> StatementOut | HttpResponse:
    currency = q.currency.upper()
    if not is_currency(currency):
        raise InvalidInput(f"Unknown currency {q.currency!r}.", details={"field": "currency"})
    st = services.coach_statement(current_user(request), coach_id, start=q.from_, end=q.to,
                                  currency=currency)
    if q.format == "csv":
        response = HttpResponse(ledger.statement_csv(st), content_type="text/csv")
        response["Content-Disposition"] = (
            f'attachment; filename="statement-coach{coach_id}-{st.start:%Y%m%d}-'
            f'{st.end:%Y%m%d}-{currency}.csv"')
        return response
    return StatementOut(**services.statement_document(coach_id, st))


class PayoutIn(Schema):
    coach_id: JsonInt
    currency: str = Field(min_length=3, max_length=3)
    amount_minor: JsonInt = Field(gt=0, lt=2**62)
    reference: str = Field(min_length=1, max_length=60)


class PayoutOut(Schema):
    key: str
    coach_id: int
    currency: str
    amount_minor: int
    at: datetime


@router.post("/admin/payouts", response={201: PayoutOut},
             summary="Record a payout made to a coach (admins)")
def payout(request: HttpRequest, payload: PayoutIn) -> Status[Any]:
    currency = payload.currency.upper()
    if not is_currency(currency):
        raise InvalidInput(f"Unknown currency {payload.currency!r}.",
                           details={"field": "currency"})
    entry = services.record_payout(current_user(request), payload.coach_id, currency=currency,
                                   amount_minor=payload.amount_minor,
                                   reference=payload.reference)
    return Status(201, PayoutOut(key=entry.key, coach_id=payload.coach_id, currency=currency,
                                 amount_minor=payload.amount_minor, at=entry.at))


# --- webhooks -------------------------------------------------------------------------


class WebhookOut(Schema):
    received: bool
    duplicate: bool


@router.post("/billing/webhooks/stripe", response=WebhookOut, auth=None,
             summary="Stripe events (verified by Stripe-Signature, stored once by id)")
def stripe_webhook(request: HttpRequest) -> WebhookOut:
    headers = {k.lower(): v for k, v in request.headers.items()}
    _, created = services.receive_webhook("stripe", request.body, headers)
    return WebhookOut(received=True, duplicate=not created)
