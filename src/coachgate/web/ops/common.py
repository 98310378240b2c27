"""What every console page shares: who may enter, and the console's tabs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from coachgate.accounts.models import User

View = Callable[..., HttpResponse]

SECTIONS = [  # (label, path): the console's tabs, in order
    ("Statistics", "/ops/"),
    ("Failures", "/ops/failures/"),
    ("Approvals", "/ops/approvals/"),
    ("Settings", "/ops/settings/"),
]


def admin_required(view: View) -> View:
    """Logged in (else the sign-in page) as an admin (else 403). The view gets
    ``request.admin`` (the User)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user: User = request.user  # type: ignore[assignment]  # @login_required: a User
        if not user.is_admin:
            raise PermissionDenied("The console is for admins.")
        request.admin = user  # type: ignore[attr-defined]  # read by the section's view
        return view(request, *args, **kwargs)

    return wrapper


def tabs(request: HttpRequest) -> list[tuple[str, str, bool]]:
    here = request.path
    return [(label, path, here == path or (path != "/ops/" and here.startswith(path)))
            for label, path in SECTIONS]


def context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {"tabs": tabs(request), **extra}
