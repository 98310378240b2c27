from django.apps import AppConfig


class MeetingsConfig(AppConfig):
    name = "coachgate.meetings"
    label = "meetings"
    verbose_name = "Video meetings"
    default_auto_field = "django.db.models.BigAutoField"
