from typing import Any

from django.apps import AppConfig
from django.core import checks


class KitConfig(AppConfig):
    name = "coachgate.kit"
    label = "kit"
    verbose_name = "Platform"

    def ready(self) -> None:
        checks.register(unknown_settings_check)


def unknown_settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``manage.py check`` names every COACHGATE_* variable nothing reads."""
    from .config import unknown_variables

    return [checks.Warning(line, id="coachgate.W001",
                           hint="See coachgate.kit.config for every setting.")
            for line in unknown_variables()]
