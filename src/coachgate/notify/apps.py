from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "coachgate.notify"
    label = "notify"
    verbose_name = "Notifications"
