from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "coachgate.scheduling"
    label = "scheduling"
