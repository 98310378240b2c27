from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "coachgate.accounts"
    label = "accounts"
    verbose_name = "People and coach applications"

    def ready(self) -> None:
        from .discord_oauth import receivers  # noqa: F401  (connects the allauth signals)
