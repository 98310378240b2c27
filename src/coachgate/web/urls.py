from django.urls import include, path

from . import account, apply, media, views
from .coach import offers as coach_offers

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("coaches/<int:coach_id>/", views.coach_page, name="coach"),
    path("offers/<int:offer_id>/", views.offer_page, name="offer"),
    path("offers/<int:offer_id>/book", views.book, name="book"),
    path("sessions/", views.my_sessions, name="sessions"),
    path("sessions/<int:session_id>/cancel", views.cancel, name="cancel"),
    path("sessions/<int:session_id>/join", views.join_session, name="join"),
    path("sessions/<int:session_id>/<slug:action>", views.outcome, name="outcome"),
    path("discord/join", views.discord_join, name="discord_join"),
    path("account/", account.account_settings, name="account_settings"),
    path("media/coach/<int:coach_id>/<int:size>.jpg", media.coach_photo, name="coach_photo"),
    path("coach/", include("coachgate.web.coach.urls")),
    path("ops/", include("coachgate.web.ops.urls")),
    *apply.urlpatterns,
    *coach_offers.public_urlpatterns,  # offer pictures, for students too
]
