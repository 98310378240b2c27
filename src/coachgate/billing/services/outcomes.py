"""Outcome actions: a no-show, a coach absent, the coach ending the session, meeting events."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from coachgate.accounts.models import User
from coachgate.kit import clock
from coachgate.kit.errors import (
    AlreadySettled,
    Forbidden,
    InvalidInput,
    OutcomeTooEarly,
    ParticipantAttended,
)
from coachgate.scheduling import services as scheduling
from coachgate.scheduling.events import SessionEventKind
from coachgate.scheduling.lifecycle import TERMINAL
from coachgate.scheduling.models import BookingStatus, Session

from .. import rules
from ..models import (
    Attendance,
    MeetingEvidence,
    SessionBilling,
    Settlement,
)
from ..rules import Outcome
from ._common import percentages, thresholds_of
from .settlement import _settle_booking, settle_session

log = logging.getLogger(__name__)


@dataclass
class OutcomeResult:
    session: Session
    settlements: list[Settlement] = field(default_factory=list)


def _is_coach(actor: User, session: Session) -> bool:
    return session.coach.user_id == actor.pk


def _wait_passed(session: Session, now: datetime, who_may: str) -> datetime:
    """When no-shows may be recorded (start + no-show wait); OutcomeTooEarly before."""
    allowed_from = rules.no_show_allowed_from(session.starts_at, thresholds_of(session))
    if now < allowed_from:
        raise OutcomeTooEarly(
            f"{who_may} from {allowed_from:%H:%M} UTC, once the no-show wait has passed.",
            details={"allowed_from": allowed_from.isoformat()})
    return allowed_from


def _joined_by(session: Session, user_id: int, deadline: datetime) -> bool:
    return Attendance.objects.filter(session=session, user_id=user_id,
                                     joined_at__lte=deadline).exists()


def mark_student_no_show(actor: User, session_id: int, *, student_id: int | None = None,
                         now: datetime | None = None) -> OutcomeResult:
    """The session's coach (only) marks a student absent, once the no-show wait has passed.
    In a group session ``student_id`` names the student; the session becomes a no-show when
    every student was marked, and the others settle at the end as usual."""
    now = now or clock.now()
    session = scheduling.get_session(actor, session_id)  # 404 for strangers
    if not _is_coach(actor, session):
        raise Forbidden("Only the session's coach can mark a student as a no-show.")
    allowed_from = _wait_passed(session, now, "A student can be marked absent")
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if session.status in TERMINAL:
            raise AlreadySettled(f"This session is already {session.status.replace('_', ' ')}.")
        active = list(session.bookings.filter(status=BookingStatus.ACTIVE).order_by("pk"))
        unmarked = [b for b in active if not Settlement.objects.filter(booking=b).exists()]
        if student_id is None:
            if len(unmarked) != 1:
                raise InvalidInput("Name the absent student (student_id) in a group session.",
                                   details={"field": "student_id"})
            target = unmarked[0]
        else:
            found = [b for b in unmarked if b.student_id == student_id]
            if not found:
                raise InvalidInput("That student holds no unsettled seat in this session.",
                                   details={"field": "student_id"})
            target = found[0]
        if _joined_by(session, target.student_id, allowed_from):
            raise ParticipantAttended("The meeting shows the student joined within the wait.")
        if len(unmarked) == 1:  # the last (or only) student: the whole session is a no-show
            scheduling.end_as_student_no_show(actor, session_id, now=now)
            return OutcomeResult(scheduling.lock_session(session_id),
                                 settle_session(session_id, now=now, actor=actor))
        target.session = session
        target.student = User.objects.get(pk=target.student_id)
        scheduling.record_event(session, SessionEventKind.STUDENT_MARKED_ABSENT, actor, now,
                                booking=target, details={"student_id": target.student_id})
        settled = _settle_booking(target, Outcome.NO_SHOW_STUDENT, now=now, actor=actor,
                                  pct=percentages())
        return OutcomeResult(session, [settled] if settled else [])


def report_coach_no_show(actor: User, session_id: int, *,
                         now: datetime | None = None) -> OutcomeResult:
    """A student of the session reports that the coach never came, after the wait."""
    now = now or clock.now()
    session = scheduling.get_session(actor, session_id)
    if not session.bookings.filter(student=actor, status=BookingStatus.ACTIVE).exists():
        raise Forbidden("Only a student of this session can report the coach absent.")
    allowed_from = _wait_passed(session, now, "The coach can be reported absent")
    if _joined_by(session, session.coach.user_id, allowed_from):
        raise ParticipantAttended("The meeting shows the coach joined within the wait.")
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if session.status in TERMINAL:
            raise AlreadySettled(f"This session is already {session.status.replace('_', ' ')}.")
        scheduling.end_as_coach_no_show(actor, session_id, now=now)
        result = OutcomeResult(scheduling.lock_session(session_id),
                               settle_session(session_id, now=now, actor=actor))
        _notify_coach_no_show(result.session, now)
        return result


def _notify_coach_no_show(session: Session, now: datetime) -> None:
    from coachgate.notify.services import notify

    notify(session.coach.user, "coach_no_show_notice",
           {"session_id": session.pk, "offer_title": session.offer.title,
            "starts_at": session.starts_at.isoformat()},
           key=f"coach_no_show:{session.pk}", now=now)


def complete(actor: User, session_id: int, *, now: datetime | None = None) -> OutcomeResult:
    """The coach (or an admin) ends the session now. Ending is evidence: before the minimum
    payable time it is an early end (nothing charged), after it a completion."""
    now = now or clock.now()
    session = scheduling.get_session(actor, session_id)
    if not (actor.is_admin or _is_coach(actor, session)):
        raise Forbidden("Only the session's coach can end it.")
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if session.status in TERMINAL:
            raise AlreadySettled(f"This session is already {session.status.replace('_', ' ')}.")
        if now < session.starts_at:
            scheduling.complete_session(actor, session_id, now=now)  # raises: not started
        ev = MeetingEvidence.objects.filter(session=session).first()
        evidence = rules.Evidence(ev.started_at if ev else None,
                                  (ev.ended_at if ev and ev.ended_at else None) or now)
        outcome = rules.end_outcome(starts_at=session.starts_at, ends_at=session.ends_at,
                                    t=thresholds_of(session), evidence=evidence)
        if outcome == Outcome.COMPLETED:
            scheduling.complete_session(actor, session_id, now=now)
        else:
            scheduling.end_session_short(actor, session_id, now=now)
        return OutcomeResult(scheduling.lock_session(session_id),
                             settle_session(session_id, now=now, actor=actor))


MEETING_EVENTS = ("started", "ended", "joined")


def record_meeting_event(actor: User | None, session_id: int, *, kind: str, at: datetime,
                         user_id: int | None = None, now: datetime | None = None
                         ) -> MeetingEvidence:
    """Meeting evidence: the meeting started or ended, or a participant joined. Admins and
    the session's coach (and, later, provider webhooks with ``actor=None``) report it."""
    now = now or clock.now()
    at = clock.require_aware(at, "at")
    if actor is not None:
        session = scheduling.get_session(actor, session_id)
        if not (actor.is_admin or _is_coach(actor, session)):
            raise Forbidden("Only the session's coach or an admin reports meeting events.")
    if kind not in MEETING_EVENTS:
        raise InvalidInput(f"kind is one of {', '.join(MEETING_EVENTS)}.",
                           details={"field": "kind"})
    with transaction.atomic(durable=True):
        session = scheduling.lock_session(session_id)
        if at > now + timedelta(minutes=1):
            raise InvalidInput("A meeting event cannot be in the future.",
                               details={"field": "at"})
        if not session.starts_at - timedelta(hours=1) <= at <= session.ends_at + timedelta(
                hours=6):
            raise InvalidInput("The event's time is not within the session.",
                               details={"field": "at"})
        if SessionBilling.objects.filter(session=session, settled_at__isnull=False).exists():
            raise AlreadySettled("This session is settled; its meeting evidence is closed.")
        ev, _ = MeetingEvidence.objects.get_or_create(session=session)
        if kind == "started":
            ev.started_at = min(ev.started_at, at) if ev.started_at else at
            if ev.ended_at and ev.ended_at < at:
                ev.ended_at = None  # restarted after an end: it is running again
        elif kind == "ended":
            ev.ended_at = max(ev.ended_at, at) if ev.ended_at else at
        else:
            participants = {session.coach.user_id, *session.bookings.filter(
                status=BookingStatus.ACTIVE).values_list("student_id", flat=True)}
            if user_id not in participants:
                raise InvalidInput("user_id must be the coach or a student of the session.",
                                   details={"field": "user_id"})
            row, created = Attendance.objects.get_or_create(
                session=session, user_id=user_id, defaults={"joined_at": at})
            if not created and at < row.joined_at:
                row.joined_at = at
                row.save(update_fields=["joined_at"])
        ev.save()
        return ev
