"""The coach's video connections page and its actions."""

from tests.web_permissions import COACH_ONLY_PAGE, Row, login

PAGE = "/coach/connections/"
COACH_405 = (403, 403, 405, 405, 403)


def _coach(path: str, answers: tuple[object, ...]) -> tuple[object, ...]:
    return (login(path), *answers)


def _action(path: str, outcome: str) -> tuple[object, ...]:
    return (login(path), 403, 403, outcome, outcome, 403)


ROWS: list[Row] = [
    ("GET", PAGE, {}, _coach(PAGE, COACH_ONLY_PAGE)),
    ("POST", PAGE, {}, _coach(PAGE, COACH_405)),
    ("GET", "/coach/connections/jitsi", {}, _coach("/coach/connections/jitsi", COACH_405)),
    ("POST", "/coach/connections/jitsi", {"base_url": "https://meet.example.org"},
     _action("/coach/connections/jitsi", f"{PAGE} success")),
    ("POST", "/coach/connections/jitsi", {"base_url": "ftp://x"},
     _action("/coach/connections/jitsi", f"{PAGE} error | must start with https://")),
    ("GET", "/coach/connections/zoom/connect", {},
     _coach("/coach/connections/zoom/connect", COACH_405)),
    # No Zoom app in the tests' settings: the page says so, nothing else happens.
    ("POST", "/coach/connections/zoom/connect", {},
     _action("/coach/connections/zoom/connect", f"{PAGE} error | has not set this provider")),
    ("GET", "/coach/connections/zoom/callback?code=c&state=s", {},
     ("/accounts/login/?next=/coach/connections/zoom/callback%3Fcode%3Dc%26state%3Ds",
      403, 403, f"{PAGE} error | did not start here", f"{PAGE} error | did not start here",
      403)),
    ("POST", "/coach/connections/zoom/callback", {},
     _coach("/coach/connections/zoom/callback", COACH_405)),
    ("GET", "/coach/connections/zoom/remove", {},
     _coach("/coach/connections/zoom/remove", COACH_405)),
    ("POST", "/coach/connections/zoom/remove", {},
     _action("/coach/connections/zoom/remove", f"{PAGE} error | not connected")),
]
