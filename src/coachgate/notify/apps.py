from typing import Any

from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "coachgate.notify"
    label = "notify"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from coachgate.kit import periodic
        from coachgate.notify import receivers  # noqa: F401  (connects session events)

        periodic.register_sweep("notify", _sweep, order=20)


def _sweep(ctx: Any) -> dict[str, Any]:
    """Wake the outbox rows whose wake-up was lost; retry failed deliveries."""
    from .services import sweep_outbox

    return {"touched": sweep_outbox(now=ctx.now)}
