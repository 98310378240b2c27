"""The admin console (/ops/): statistics, the failures inbox, approvals, settings."""
from django.urls import URLPattern

from . import approvals, failures, platform, stats

urlpatterns: list[URLPattern] = [
    *stats.urlpatterns,
    *failures.urlpatterns,
    *approvals.urlpatterns,
    *platform.urlpatterns,
]
