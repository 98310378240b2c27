"""Pages answer 503 with Retry-After when the database is busy (a lock wait ran out), as
the API does (its own handler in coachgate.api): the request wrote nothing, and a 500
would say something broke."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from coachgate.kit.errors import DatabaseBusy, is_database_busy

log = logging.getLogger(__name__)

_PAGE = ("<!doctype html><meta charset=utf-8><title>Busy</title>"
         "<h1>Busy right now</h1><p>{message}</p>")


class DatabaseBusyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception
                          ) -> HttpResponse | None:
        if not is_database_busy(exception):
            return None  # Django's own handling (500 page, debug page)
        log.warning("database busy on %s %s: %s", request.method, request.path, exception)
        busy = DatabaseBusy()
        response = HttpResponse(_PAGE.format(message=busy.message), status=busy.status,
                                content_type="text/html; charset=utf-8")
        response["Retry-After"] = str(busy.retry_after_s)
        return response
