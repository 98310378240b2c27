"""Wake-ups. Tasks carry nothing: what is due is read from the pack and seat rows."""

from __future__ import annotations

from django_tasks import task

from coachgate.kit import clock


@task(priority=5)  # a gate: before notifications, after access gates
def run_due() -> dict[str, int]:
    """packs.run_due: expire packs, warn and release seats whose time has come."""
    from .services import run_due as run

    return run(now=clock.now()).as_dict()
