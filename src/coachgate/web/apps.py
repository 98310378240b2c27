from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "coachgate.web"
    label = "web"
