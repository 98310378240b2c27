"""The JSON API under /api/v1. Errors are always {code, message, details}."""

from __future__ import annotations

import logging
from typing import Any

from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError

from coachgate.access.api import router as access_router
from coachgate.accounts.api import router as accounts_router
from coachgate.billing.api import router as billing_router
from coachgate.catalog.api import router as catalog_router
from coachgate.kit.errors import CoachgateError, DatabaseBusy, is_database_busy
from coachgate.meetings.api import router as meetings_router
from coachgate.packs.api import router as packs_router
from coachgate.scheduling.api import router as scheduling_router

log = logging.getLogger(__name__)

api = NinjaAPI(
    title="coachgate API",
    version="1",
    description=(
        "Book coaching sessions with time-gated access. Authenticate with "
        "`Authorization: Bearer <token>` (create tokens with `coachgate token create` or "
        "POST /api/v1/me/tokens). Errors are JSON objects with a stable `code`."
    ),
    urls_namespace="api-v1",
    docs_decorator=require_safe,  # Swagger UI and the schema are read-only: GET/HEAD, else 405
)
api.add_router("/", accounts_router)
api.add_router("/", catalog_router)
api.add_router("/", scheduling_router)
api.add_router("/", access_router)
api.add_router("/", billing_router)
api.add_router("/", meetings_router)
api.add_router("/", packs_router)


def _error(request: HttpRequest, status: int, code: str, message: str,
           details: dict[str, Any] | None = None) -> HttpResponse:
    return api.create_response(
        request, {"code": code, "message": message, "details": details or {}}, status=status
    )


@api.exception_handler(CoachgateError)
def _business_error(request: HttpRequest, exc: CoachgateError) -> HttpResponse:
    return _error(request, exc.status, exc.code, exc.message, exc.details)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = [
        {"location": [str(p) for p in e.get("loc", [])], "message": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in exc.errors
    ]
    where = ", ".join(".".join(p["location"][1:] or p["location"]) for p in problems[:5])
    return _error(request, 422, "invalid_input", f"Some of the input is not valid: {where}.",
                  {"errors": problems})


@api.exception_handler(AuthenticationError)
def _auth_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "unauthenticated",
                  "Authentication is required: send 'Authorization: Bearer <token>'.")


@api.exception_handler(AuthorizationError)
def _authz_error(request: HttpRequest, exc: AuthorizationError) -> HttpResponse:
    return _error(request, 403, "forbidden", "You are not allowed to do this.")


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "Nothing was found there.")


_HTTP_CODES = {400: "bad_request", 403: "forbidden", 405: "method_not_allowed",
               429: "throttled"}


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # django-ninja reports a body it cannot parse as a plain HttpError(400).
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        return _error(request, 400, "malformed_json", "The request body is not valid JSON.")
    return _error(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"),
                  str(exc))


# A lock wait that ran out (SQLite's busy timeout, PostgreSQL's lock_timeout) wrote nothing:
# 503 with a stable code and Retry-After, never a 500. Other database errors are bugs.
@api.exception_handler(OperationalError)
def _database_error(request: HttpRequest, exc: OperationalError) -> HttpResponse:
    if not is_database_busy(exc):
        return _unexpected(request, exc)
    log.warning("database busy on %s %s: %s", request.method, request.path, exc)
    busy = DatabaseBusy()
    response = _error(request, busy.status, busy.code, busy.message, busy.details)
    response["Retry-After"] = str(busy.retry_after_s)
    return response


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(request, 500, "internal_error", "Something went wrong on our side.")
