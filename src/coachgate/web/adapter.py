"""allauth's adapter: the client address comes from coachgate.kit.http, so the login rate
limit counts each client behind the trusted reverse proxy on its own (allauth alone would
count every proxied client as the proxy's address, or believe a forged X-Forwarded-For)."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from coachgate.kit.http import client_ip


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth ships no type hints
    def get_client_ip(self, request: HttpRequest) -> str:
        return client_ip(request)

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        """Where a login lands when no ?next= says otherwise: a coach on the dashboard, an
        admin on the console, a student on the coaches."""
        role = getattr(request.user, "role", "")
        if role == "coach":
            return "/coach/"
        if role == "admin":
            return "/ops/"
        return str(super().get_login_redirect_url(request))
