from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "coachgate.notify"
    label = "notify"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from coachgate.notify import receivers  # noqa: F401  (connects session events)
