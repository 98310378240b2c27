from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "coachgate.access"
    label = "access"
    verbose_name = "Session access"

    def ready(self) -> None:
        from coachgate.access import receivers  # noqa: F401  (connects session events)
