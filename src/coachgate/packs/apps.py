from django.apps import AppConfig


class PacksConfig(AppConfig):
    name = "coachgate.packs"
    label = "packs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects the session and settlement receivers)
