"""Request middleware: the viewer's zone, the API's error shape and input guard, the CSP.

Pages render times in the viewer's zone: ?tz=..., else the user's own, else UTC. Django's
date/time template filters convert to the *active* zone, so the zone is activated for the
whole request rather than converted by hand in views.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from coachgate.kit.http import nul_locations


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


def _api_error(status: int, code: str, message: str,
               details: dict[str, Any] | None = None) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, "details": details or {}},
                        status=status)


class ApiJsonErrorsMiddleware:
    """Errors that never reach the API's exception handlers get the API's JSON shape too:
    django-ninja answers a wrong method with a plain-text 405, and a path under /api/ that
    no route matches gets Django's HTML 404 page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (response.status_code not in (404, 405) or not request.path.startswith("/api/")
                or response.get("Content-Type", "").startswith("application/json")):
            return response
        if response.status_code == 404:
            return _api_error(404, "not_found", "Nothing was found there.")
        allowed = response.get("Allow", "")
        json_response = _api_error(
            405, "method_not_allowed",
            f"{request.method} is not allowed here" + (f"; use {allowed}." if allowed else "."),
            {"allowed": [m.strip() for m in allowed.split(",") if m.strip()]})
        if allowed:
            json_response["Allow"] = allowed
        return json_response


class InputGuardMiddleware:
    """What no route accepts, refused before any route (or authentication) runs:

    - a body over DATA_UPLOAD_MAX_MEMORY_SIZE: 413 (``payload_too_large`` under /api/).
      Django raises RequestDataTooBig when a route reads such a body: a 500 in the API;
    - a NUL character in the path, a query parameter, a form field or any string (key or
      value) of a JSON body: 422 ``invalid_input`` under /api/, 400 for pages. PostgreSQL
      cannot store it and SQLite stores it silently; no field of coachgate means it, and
      not every page reads its input through a Django form (which would refuse it).
    """

    MESSAGE = "Text may not contain NUL characters (U+0000)"

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        api = request.path.startswith("/api/")
        try:
            where = self._nul_locations(request, api=api)
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            message = f"The request body is larger than {limit} bytes."
            if api:
                return _api_error(413, "payload_too_large", message, {"max_bytes": limit})
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        if not where:
            return self.get_response(request)
        named = ", ".join(".".join(w) for w in where[:5])
        if api:
            return _api_error(
                422, "invalid_input", f"{self.MESSAGE}: {named}.",
                {"errors": [{"location": w, "message": self.MESSAGE, "type": "nul_character"}
                            for w in where]})
        return HttpResponse(f"{self.MESSAGE}: {named}.", status=400,
                            content_type="text/plain; charset=utf-8")

    @staticmethod
    def _nul_locations(request: HttpRequest, *, api: bool) -> list[list[str]]:
        def shown(name: str) -> str:
            return name.replace("\x00", "\\u0000")

        where: list[list[str]] = []
        if "\x00" in request.path:
            where.append(["path"])
        for key, values in request.GET.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                where.append(["query", shown(key)])
        if not api:
            if request.content_type in ("application/x-www-form-urlencoded",
                                        "multipart/form-data"):
                for key, values in request.POST.lists():
                    if "\x00" in key or any("\x00" in v for v in values):
                        where.append(["form", shown(key)])
            else:
                request.body  # noqa: B018  # reads it: a body over the limit raises here
            return where
        body = request.body
        if b"\x00" in body:
            where.append(["body"])  # a raw NUL byte: not even valid JSON
        elif b"\\u0000" in body.lower():  # cheap test first: most bodies have none
            try:
                data = json.loads(body)
            except ValueError:
                data = None  # the route answers malformed_json
            where.extend(["body", *loc] for loc in nul_locations(data))
        return where


class ContentSecurityPolicyMiddleware:
    """Sends settings.CONTENT_SECURITY_POLICY with every response (Django 5.2 has no CSP of
    its own). ``{nonce}`` in the policy becomes a fresh nonce per request, available to
    templates as ``request.csp_nonce`` for their inline scripts."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]  # read by templates
        response = self.get_response(request)
        policy = str(getattr(settings, "CONTENT_SECURITY_POLICY", "") or "")
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy.replace("{nonce}", nonce)
        return response
