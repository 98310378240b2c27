"""Routes for session access and the external-cron trigger. Thin: services decide."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.security import HttpBearer

from coachgate.accounts.auth import API_AUTH, current_user
from coachgate.accounts.models import Role
from coachgate.kit import clock
from coachgate.kit.config import conf
from coachgate.kit.errors import Forbidden
from coachgate.scheduling.lifecycle import LIVE
from coachgate.scheduling.services import get_session

from . import rules, services
from .models import SessionAccess

router = Router(tags=["access"])


class CronSecret(HttpBearer):
    """`Authorization: Bearer <COACHGATE_CRON_SECRET>`, compared in constant time. With no
    secret configured the endpoint accepts nobody."""

    def authenticate(self, request: HttpRequest, token: str) -> str | None:
        secret = conf().CRON_SECRET
        if secret and hmac.compare_digest(token.encode(), secret.encode()):
            return "cron"
        return None


class SweepOut(Schema):
    # The access sweep's figures (all 0 and ``error`` set when the access sweep failed).
    rows_created: int = 0
    converged: int = 0
    outcomes: dict[str, int] = {}
    channels_recreated: int = 0
    overwrites_repaired: int = 0
    orphans_deleted: int = 0
    members_readded: int = 0
    drift_error: str = ""
    errors: int = 0
    failures: list[dict[str, Any]] = []
    error: str = ""
    notify: dict[str, Any] = {}
    billing: dict[str, Any] = {}
    packs: dict[str, Any] = {}
    # Rows waiting for a retry after an error, by kind: id, attempts, retry_at, error.
    failing: dict[str, Any] = {}


@router.post("/system/sweep", response=SweepOut, auth=CronSecret(),
             summary="Run the sweep now (for an external cron)")
def run_sweep(request: HttpRequest) -> dict[str, Any]:
    from coachgate.kit.periodic import sweep_all

    # Settlement, payments, packs, seats and the outbox are swept too: a cron-driven
    # deployment runs them all with this call. Each sweep and each row runs on its own.
    report = sweep_all(limit=2000, failing=True)
    return {**report.pop("access"), **report}


class GateOut(Schema):
    kind: str
    at: datetime
    before_s: int


class ProblemOut(Schema):
    code: str
    message: str


class AccessOut(Schema):
    session_id: int
    phase: str
    # None (with ``available`` false and ``problem`` set) when the session's access policy
    # cannot be read: its gates are unknown, so nothing is promised and no link is given.
    desired_phase: str | None
    join_window_open: bool
    link: str | None
    next_due_at: datetime | None
    gates: list[GateOut]
    available: bool = True
    problem: ProblemOut | None = None
    error_kind: str | None = None
    last_error: str | None = None
    discord_calls: int | None = None


@router.get("/sessions/{session_id}/access", response=AccessOut, auth=API_AUTH,
            summary="A session's gates and access state")
def session_access(request: HttpRequest, session_id: int) -> dict[str, Any]:
    user = current_user(request)
    session = get_session(user, session_id)  # 404 unless the caller may see it
    now = clock.now()
    live = session.status in LIVE
    row = SessionAccess.objects.filter(pk=session.pk).first()
    problem: services.AccessUnavailable | None = None
    try:
        gates = services.readable_gates(session)
    except services.AccessUnavailable as exc:
        gates, problem = [], exc
    open_now = bool(gates) and rules.join_window_open(gates, live=live, now=now)
    out: dict[str, Any] = {
        "session_id": session.pk,
        "phase": row.phase if row else rules.Phase.NONE.value,
        "desired_phase": rules.desired_phase(gates, live=live, now=now).value if gates
        else None,
        "join_window_open": open_now,
        # The link is only handed out while the join window is open.
        "link": services.channel_link(row) if row and open_now else None,
        "next_due_at": row.next_due_at if row else None,
        "gates": [{"kind": g.kind.value, "at": g.at, "before_s": g.before_s} for g in gates],
        "available": problem is None,
        "problem": {"code": problem.code, "message": problem.message} if problem else None,
    }
    if user.role == Role.ADMIN and row is not None:
        out.update(error_kind=row.error_kind, last_error=row.last_error,
                   discord_calls=row.discord_calls)
    if user.role == Role.ADMIN and problem is not None and not out.get("last_error"):
        out["last_error"] = problem.details.get("reason")
    return out


@router.post("/sessions/{session_id}/access/converge", response=AccessOut, auth=API_AUTH,
             summary="Converge a session's access now (admins)")
def converge_now(request: HttpRequest, session_id: int) -> dict[str, Any]:
    user = current_user(request)
    # 404 for sessions the caller cannot see, and for ids no session can have: the lookup
    # through Session range-checks the id, while converge's query on the access row (a
    # foreign key) would hand an out-of-range integer to the database driver.
    session = get_session(user, session_id)
    if user.role != Role.ADMIN:
        raise Forbidden("Only admins can run a session's gates by hand.")
    services.converge(session.pk, now=clock.now())
    return session_access(request, session_id)
