"""The coach's profile, photo and availability pages, the photo files, and become-a-coach."""

from tests.web_permissions import ALL_404, ALL_405, COACH_ONLY_PAGE, Row, login

COACH_405 = (403, 403, 405, 405, 403)  # a coach-only action asked for with the wrong method
WEEK = "/coach/availability/#weekly-hours"
OVERRIDES = "/coach/availability/#overrides"
REFUSED = "Only a student account without an application waiting"


def _coach(path: str, answers: tuple[object, ...]) -> tuple[object, ...]:
    return (login(path), *answers)


def _coach_action(path: str, outcome: str) -> tuple[object, ...]:
    return (login(path), 403, 403, outcome, outcome, 403)


ROWS: list[Row] = [
    ("GET", "/coach/profile/", {}, _coach("/coach/profile/", COACH_ONLY_PAGE)),
    # An empty form is shown again with its errors, changing nothing.
    ("POST", "/coach/profile/", {}, _coach("/coach/profile/", COACH_ONLY_PAGE)),
    ("POST", "/coach/profile/", {"display_name": "N", "timezone": "UTC", "seat_capacity": "3",
                                 "specialties": ["chess"]},
     _coach_action("/coach/profile/", "/coach/profile/ success")),
    ("GET", "/coach/profile/photo", {}, _coach("/coach/profile/photo", COACH_405)),
    ("POST", "/coach/profile/photo", {},
     _coach_action("/coach/profile/photo", "/coach/profile/ error | Choose a photo")),
    ("GET", "/coach/profile/photo/remove", {}, _coach("/coach/profile/photo/remove", COACH_405)),
    ("POST", "/coach/profile/photo/remove", {},
     _coach_action("/coach/profile/photo/remove", "/coach/profile/ success")),
    # Nobody in this world has a photo yet: 404 for everyone; the file takes GET and HEAD.
    ("GET", "/media/coach/{coach_id}/512.jpg", {}, ALL_404),
    ("POST", "/media/coach/{coach_id}/512.jpg", {}, ALL_405),
    ("GET", "/coach/availability/", {}, _coach("/coach/availability/", COACH_ONLY_PAGE)),
    ("POST", "/coach/availability/", {}, _coach("/coach/availability/", COACH_405)),
    ("GET", "/coach/availability/ranges/add", {},
     _coach("/coach/availability/ranges/add", COACH_405)),
    ("POST", "/coach/availability/ranges/add",
     {"weekdays": ["0"], "start": "18:00", "end": "19:00"},
     _coach_action("/coach/availability/ranges/add", f"{WEEK} success")),
    ("GET", "/coach/availability/ranges/999999/edit", {},
     _coach("/coach/availability/ranges/999999/edit", COACH_405)),
    ("POST", "/coach/availability/ranges/999999/edit",
     {"weekday": "0", "start": "10:00", "end": "11:00"},
     _coach_action("/coach/availability/ranges/999999/edit",
                   f"{WEEK} error | no longer there")),
    ("GET", "/coach/availability/ranges/999999/remove", {},
     _coach("/coach/availability/ranges/999999/remove", COACH_405)),
    ("POST", "/coach/availability/ranges/999999/remove", {},
     _coach_action("/coach/availability/ranges/999999/remove",
                   f"{WEEK} error | no longer there")),
    ("GET", "/coach/availability/presets", {}, _coach("/coach/availability/presets", COACH_405)),
    ("POST", "/coach/availability/presets", {"preset": "evening", "weekdays": ["0"]},
     _coach_action("/coach/availability/presets", f"{WEEK} success")),
    ("GET", "/coach/availability/overrides/add", {},
     _coach("/coach/availability/overrides/add", COACH_405)),
    ("POST", "/coach/availability/overrides/add", {"day": "2031-03-12", "kind": "blocked_day"},
     _coach_action("/coach/availability/overrides/add",
                   "/coach/availability/?month=2031-03#overrides success")),
    ("GET", "/coach/availability/overrides/{override}/remove", {},
     _coach("/coach/availability/overrides/{override}/remove", COACH_405)),
    # The override is the coach's: another coach is told there is no such override.
    ("POST", "/coach/availability/overrides/{override}/remove", {},
     (login("/coach/availability/overrides/{override}/remove"), 403, 403,
      f"{OVERRIDES} success", f"{OVERRIDES} error | No such override.", 403)),
    ("GET", "/become-a-coach/", {}, (login("/become-a-coach/"),) + (200,) * 5),
    # The student may apply; the stranger's application waits for review; coaches and
    # admins do not apply.
    ("POST", "/become-a-coach/", {"display_name": "A", "timezone": "UTC"},
     (login("/become-a-coach/"), "/become-a-coach/ success")
     + (f"/become-a-coach/ error | {REFUSED}",) * 4),
    ("POST", "/become-a-coach/", {},
     (login("/become-a-coach/"), 200) + (f"/become-a-coach/ error | {REFUSED}",) * 4),
]
