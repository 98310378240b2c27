"""Outbox wake-ups. A task carries only a row id: all truth is in the Notification row,
so a duplicate task finds nothing to claim and a lost one is found by the sweep."""

from __future__ import annotations

from django_tasks import task

from coachgate.kit import clock

from . import services


@task()
def send_notification(notification_id: int) -> str:
    """notify.send: deliver one notification if it is due and nobody else has it."""
    done = services.deliver(notification_id, now=clock.now())
    return "not_claimed" if done is None else done.status


@task()
def send_due() -> int:
    """notify.send_due: deliver every pending notification that is due (a wake-up, shared by
    the confirmations of every booking made in the same half second)."""
    return services.send_due(now=clock.now())


@task()
def sweep_notifications() -> int:
    """notify.sweep: wake lost pending rows, abandon rows stuck mid-send."""
    return services.sweep_outbox(now=clock.now())
