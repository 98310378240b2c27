from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "coachgate.billing"
    label = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the session-event receivers)
