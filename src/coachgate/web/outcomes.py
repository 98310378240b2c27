"""The outcome buttons of the sessions page, built from what billing says of each session
(billing.services.outcome_states): the coach's "Student absent" appears once the no-show
wait has passed (with a countdown before), "End session" once the session started; a
student may report the coach absent after the wait. Settled sessions show the charge."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from coachgate.accounts.models import User
from coachgate.billing.services import outcome_states
from coachgate.scheduling.models import Session


@dataclass
class OutcomeButtons:
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (action, label)
    no_show_from: datetime | None = None  # the wait still runs until then
    settled: str = ""


def outcome_buttons(actor: User, sessions: list[Session], now: datetime
                    ) -> dict[int, OutcomeButtons]:
    states = outcome_states(actor, sessions, now)
    out: dict[int, OutcomeButtons] = {}
    for session in sessions:
        state = states[session.pk]
        view = out[session.pk] = OutcomeButtons(settled=state.settled)
        if state.no_show_from is None:  # settled, or not started yet
            continue
        if session.coach.user_id == actor.pk:
            if now >= state.no_show_from:
                view.buttons.append(("no-show", "Student absent"))
            else:
                view.no_show_from = state.no_show_from
            view.buttons.append(("complete", "End session"))
        elif now >= state.no_show_from:
            view.buttons.append(("coach-no-show", "Coach absent"))
    return out
