"""The coach dashboard's overview, sessions and earnings pages (web/coach/home.py,
sessions.py, earnings.py). Only coaches enter; a coach sees only the sessions they coach
(another coach's session is not found). The pages are read-only: a POST is refused (403
before the role check passes, 405 after)."""

from tests.web_permissions import COACH_ONLY_PAGE, Row, login

NOT_A_PAGE_FOR_POST = (403, 403, 405, 405, 403)  # student, stranger, coach, other_coach, admin
STATEMENT = {"start": "2031-03-01", "end": "2031-03-31", "currency": "USD", "format": "csv"}
STATEMENT_JSON = {**STATEMENT, "format": "json"}


def _asked(fmt: str) -> str:  # where the login sends the anonymous visitor back to
    return login("/coach/earnings/statement%3Fstart%3D2031-03-01%26end%3D2031-03-31"
                 f"%26currency%3DUSD%26format%3D{fmt}")


def _rows(path: str) -> list[Row]:
    return [("GET", path, {}, (login(path), *COACH_ONLY_PAGE)),
            ("POST", path, {}, (login(path), *NOT_A_PAGE_FOR_POST))]


ROWS: list[Row] = [
    *_rows("/coach/"),
    *_rows("/coach/sessions/"),
    ("GET", "/coach/sessions/?up=2&page=abc", {},
     (login("/coach/sessions/%3Fup%3D2%26page%3Dabc"), *COACH_ONLY_PAGE)),
    ("GET", "/coach/sessions/{session}/", {},
     (login("/coach/sessions/{session}/"), 403, 403, 200, 404, 403)),
    ("POST", "/coach/sessions/{session}/", {},
     (login("/coach/sessions/{session}/"), *NOT_A_PAGE_FOR_POST)),
    ("GET", "/coach/sessions/999999/", {},
     (login("/coach/sessions/999999/"), 403, 403, 404, 404, 403)),
    *_rows("/coach/earnings/"),
    ("GET", "/coach/earnings/statement", STATEMENT, (_asked("csv"), *COACH_ONLY_PAGE)),
    ("GET", "/coach/earnings/statement", STATEMENT_JSON, (_asked("json"), *COACH_ONLY_PAGE)),
    # No period: the earnings page with the form's errors, nothing downloaded.
    ("GET", "/coach/earnings/statement", {},
     (login("/coach/earnings/statement"), 403, 403, 400, 400, 403)),
    ("POST", "/coach/earnings/statement", STATEMENT,
     (login("/coach/earnings/statement"), *NOT_A_PAGE_FOR_POST)),
]
