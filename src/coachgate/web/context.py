"""What every page's layout needs: the viewer's zone (named in the footer) and the
navigation for the viewer's role."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone


def chrome(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    nav: list[tuple[str, str]] = [("Find a coach", reverse("home"))]
    if user is not None and user.is_authenticated:
        nav.append(("My sessions", reverse("sessions")))
        if user.role == "coach":
            nav.insert(0, ("Dashboard", "/coach/"))
        elif user.role == "admin":
            nav.insert(0, ("Console", "/ops/"))
    here = request.path
    return {
        "viewer_zone": str(timezone.get_current_timezone()),
        "nav": [(label, url, here == url or (url != "/" and here.startswith(url)))
                for label, url in nav],
    }
