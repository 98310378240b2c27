"""Pages render times in the viewer's zone: ?tz=..., else the user's own, else UTC.

Django's date/time template filters convert to the *active* zone, so the zone is activated
for the whole request rather than converted by hand in views.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse
from django.utils import timezone


def viewer_zone(request: HttpRequest) -> ZoneInfo:
    user = getattr(request, "user", None)
    candidates = [request.GET.get("tz"), getattr(user, "timezone", None), "UTC"]
    for name in candidates:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # an unknown ?tz= falls back rather than failing the page
    return ZoneInfo("UTC")


class ViewerTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with timezone.override(viewer_zone(request)):
            return self.get_response(request)
