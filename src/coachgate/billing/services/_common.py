"""What every part of billing's services shares: settings, gateway name, thresholds."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from coachgate.catalog.rules import parse_money_policy
from coachgate.kit import due, money
from coachgate.kit.config import conf
from coachgate.scheduling.models import Session

from .. import rules

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
BATCH = 100
PAYMENT_ACTION_RETRY = timedelta(hours=6)  # a declined card: try again (or when it changes)


def percentages() -> rules.Percentages:
    c = conf()
    return rules.Percentages(fee=rules.exact(c.PLATFORM_FEE_PERCENT),
                             no_show_charge=rules.exact(c.NO_SHOW_CHARGE_PERCENT))


def _authorize_before_hours() -> int:
    return conf().AUTHORIZE_BEFORE_HOURS


def gateway_name() -> str:
    return money.configured_gateway()


def thresholds_of(session: Session) -> rules.Thresholds:
    # The policy the session was booked under, not the offer's current one.
    policy = parse_money_policy(session.money_policy)
    minutes = int((session.ends_at - session.starts_at).total_seconds() // 60)
    return rules.thresholds(minutes, policy.no_show_wait_ratio, policy.min_payable_ratio)


def _wake_on_commit(at: datetime | None) -> None:
    from ..tasks import run_due

    due.wake_on_commit(run_due, at)
