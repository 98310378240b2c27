from django.apps import AppConfig


class KitConfig(AppConfig):
    name = "coachgate.kit"
    label = "kit"
