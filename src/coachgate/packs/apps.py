from typing import Any

from django.apps import AppConfig


class PacksConfig(AppConfig):
    name = "coachgate.packs"
    label = "packs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from coachgate.kit import periodic

        from . import receivers  # noqa: F401  (connects the session and settlement receivers)

        periodic.register_sweep("packs", _sweep, order=40)
        periodic.register_timer_rows("packs", _pack_rows)
        periodic.register_timer_rows("seats", _seat_rows)


def _sweep(ctx: Any) -> dict[str, Any]:
    """Repair missed pack and seat gates, then run the due ones."""
    from .services import sweep

    return sweep(now=ctx.now, owner=ctx.owner).as_dict()


def _pack_rows() -> Any:
    from .models import Pack

    return Pack


def _seat_rows() -> Any:
    from .models import Seat

    return Seat
