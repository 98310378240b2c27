from typing import Any

from django.apps import AppConfig


class MeetingsConfig(AppConfig):
    name = "coachgate.meetings"
    label = "meetings"
    verbose_name = "Video meetings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from coachgate.kit import periodic

        from . import receivers  # noqa: F401  (connects the session-event receivers)

        periodic.register_sweep("meetings", _sweep, order=35)
        periodic.register_timer_rows("meetings", "meetings.Meeting")


def _sweep(ctx: Any) -> dict[str, Any]:
    """Run the meetings that are due (a lost wake-up, a retry whose time has come)."""
    from .gate import run_due

    return {"meetings": run_due(now=ctx.now, owner=ctx.owner)}
