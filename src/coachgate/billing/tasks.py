"""Wake-ups. Tasks carry nothing: what is due is read from the gate rows."""

from __future__ import annotations

from django_tasks import task

from coachgate.kit import clock


# Gates before messages: settlement wake-ups outrank notifications (priority 0) in the
# shared queue; access gates (priority 10) outrank both.
@task(priority=5)
def run_due() -> dict[str, int]:
    """billing.run_due: settle the sessions and move the payments whose time has come."""
    from .services import run_due as run

    return run(now=clock.now()).as_dict()


@task()
def process_webhook(event_pk: int) -> str:
    """billing.process_webhook: act on one stored gateway event."""
    from .services import process_webhook as process

    return process(event_pk, now=clock.now())
