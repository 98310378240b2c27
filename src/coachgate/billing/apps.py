from typing import Any

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "coachgate.billing"
    label = "billing"
    verbose_name = "Billing and payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from coachgate.kit import periodic

        from . import receivers  # noqa: F401  (connects the session-event receivers)

        periodic.register_sweep("billing", _sweep, order=30)
        periodic.register_timer_rows("settlement", "billing.SessionBilling")
        periodic.register_timer_rows("payments", "billing.Payment")


def _sweep(ctx: Any) -> dict[str, Any]:
    """Repair bookings without their billing rows, then run the due gates."""
    from .services import sweep

    return sweep(now=ctx.now, owner=ctx.owner).as_dict()


