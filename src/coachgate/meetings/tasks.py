"""Wake-ups. Tasks carry nothing: what is due is read from the meeting rows."""

from __future__ import annotations

from django_tasks import task

from coachgate.kit import clock


@task(priority=5)
def run_due() -> int:
    """meetings.run_due: create, move or delete the provider meetings that are due."""
    from .gate import run_due as run

    return run(now=clock.now())


@task()
def process_event(event_pk: int) -> str:
    """meetings.process_event: act on one stored provider event (a Zoom webhook)."""
    from .webhooks import process_event as process

    return process(event_pk, now=clock.now())
