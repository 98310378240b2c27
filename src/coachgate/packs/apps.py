from typing import Any

from django.apps import AppConfig


class PacksConfig(AppConfig):
    name = "coachgate.packs"
    label = "packs"
    verbose_name = "Packs and seats"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from coachgate.kit import periodic

        from . import receivers  # noqa: F401  (connects the session and settlement receivers)

        periodic.register_sweep("packs", _sweep, order=40)
        periodic.register_timer_rows("packs", "packs.Pack")
        periodic.register_timer_rows("seats", "packs.Seat")


def _sweep(ctx: Any) -> dict[str, Any]:
    """Repair missed pack and seat gates, then run the due ones."""
    from .services import sweep

    return sweep(now=ctx.now, owner=ctx.owner).as_dict()


