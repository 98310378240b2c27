from typing import Any

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "coachgate.access"
    label = "access"
    verbose_name = "Session access (Discord)"

    def ready(self) -> None:
        from coachgate.access import receivers  # noqa: F401  (connects session events)
        from coachgate.kit import periodic

        periodic.register_sweep("access", _sweep, order=10)
        periodic.register_timer_rows("access", "access.SessionAccess")


def _sweep(ctx: Any) -> dict[str, Any]:
    """Converge every session behind its gates, then repair drift in Discord."""
    from .services import sweep

    return sweep(now=ctx.now, owner=ctx.owner, limit=ctx.limit, drift=ctx.drift).as_dict()

