"""API authentication: personal Bearer tokens, or the browser's login session."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from coachgate.kit.errors import Unauthenticated

from .models import User
from .services import authenticate_token


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        return authenticate_token(token)


class BrowserSession(SessionAuth):
    """The logged-in web user (CSRF-checked by django-ninja for unsafe methods).

    Without a session cookie there is nothing to check: answer "not authenticated" (401)
    instead of letting ninja's CSRF check turn every token-less API call into a 403.
    """

    def _get_key(self, request: HttpRequest) -> str | None:
        if self.param_name not in request.COOKIES:
            return None
        return super()._get_key(request)


API_AUTH: list[Any] = [BearerToken(), BrowserSession()]


def current_user(request: HttpRequest) -> User:
    user = getattr(request, "auth", None)
    if not isinstance(user, User):
        raise Unauthenticated()
    return user


def optional_user(request: HttpRequest) -> User | None:
    """For public endpoints: who is asking, if anyone. A bad token is still an error."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, raw = header.partition(" ")
        user = authenticate_token(raw.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise Unauthenticated("The Bearer token is not valid.")
        return user
    session_user = getattr(request, "user", None)
    if isinstance(session_user, User) and session_user.is_authenticated:
        return session_user
    return None
