from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "coachgate.accounts"
    label = "accounts"
