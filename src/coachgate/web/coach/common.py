"""What every dashboard section shares: who may enter, and the coach's profile."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from coachgate.accounts.models import User
from coachgate.catalog import services as catalog
from coachgate.catalog.models import CoachProfile

View = Callable[..., HttpResponse]

SECTIONS = [  # (label, path): the dashboard's tabs, in order
    ("Overview", "/coach/"),
    ("Profile", "/coach/profile/"),
    ("Availability", "/coach/availability/"),
    ("Offers", "/coach/offers/"),
    ("Sessions", "/coach/sessions/"),
    ("Earnings", "/coach/earnings/"),
    ("Connections", "/coach/connections/"),
]


def coach_required(view: View) -> View:
    """Logged in (else the sign-in page), a coach with a profile (else 403). The view gets
    ``request.coach`` (the User) and ``request.profile`` (their CoachProfile)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user: User = request.user  # type: ignore[assignment]  # @login_required: a User
        if user.role != "coach":
            raise PermissionDenied("The dashboard is for coaches.")
        try:
            profile: CoachProfile = catalog.coach_profile_of(user)
        except Exception as exc:  # a coach row without a profile: not theirs to fix here
            raise PermissionDenied("Your coach profile is missing; ask an admin.") from exc
        request.coach = user  # type: ignore[attr-defined]  # read by the section's view
        request.profile = profile  # type: ignore[attr-defined]  # read by the section's view
        return view(request, *args, **kwargs)

    return wrapper


def tabs(request: HttpRequest) -> list[tuple[str, str, bool]]:
    here = request.path
    return [(label, path, here == path or (path != "/coach/" and here.startswith(path)))
            for label, path in SECTIONS]
