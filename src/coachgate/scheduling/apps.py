from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "coachgate.scheduling"
    label = "scheduling"
    verbose_name = "Availability and sessions"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the availability version receivers
