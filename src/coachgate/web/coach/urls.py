from django.urls import URLPattern

from . import availability, connections, earnings, home, offers, profile, sessions

urlpatterns: list[URLPattern] = [
    *home.urlpatterns, *profile.urlpatterns, *availability.urlpatterns, *offers.urlpatterns,
    *sessions.urlpatterns, *earnings.urlpatterns, *connections.urlpatterns,
]
