"""Pages render times in the viewer's zone: ?tz=..., else the user's own, else UTC.

Django's date/time template filters convert to the *active* zone, so the zone is activated
for the whole request rather than converted by hand in views.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.http import HttpRequest, HttpResponse, JsonResponse
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


class ApiMethodNotAllowedMiddleware:
    """django-ninja answers a wrong method with a plain-text 405 that never reaches the API's
    exception handlers; API clients get the same JSON error shape as everywhere else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (response.status_code == 405 and request.path.startswith("/api/")
                and not response.get("Content-Type", "").startswith("application/json")):
            allowed = response.get("Allow", "")
            body = {"code": "method_not_allowed",
                    "message": f"{request.method} is not allowed here"
                               + (f"; use {allowed}." if allowed else "."),
                    "details": {"allowed": [m.strip() for m in allowed.split(",") if m.strip()]}}
            json_response = JsonResponse(body, status=405)
            if allowed:
                json_response["Allow"] = allowed
            return json_response
        return response
