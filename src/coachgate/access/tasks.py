"""Wake-ups. A task carries only a session id: what to do is read from the rows."""

from __future__ import annotations

from django_tasks import task

from coachgate.kit import clock


# The most time-critical wake-ups (access opens and closes on the second): first in line.
@task(priority=10)
def converge_session(session_id: int) -> str:
    """access.converge: bring one session's access in line with the clock."""
    from .services import converge

    # A stray wake-up (a busy retry, a stale time) never cuts a failed row's backoff short.
    return converge(session_id, now=clock.now(), respect_backoff=True).outcome
