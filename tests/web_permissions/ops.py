"""The admin console (/ops/): admins only. Anonymous visitors are sent to the login page
(whatever the method), every other role gets a 403, and an admin gets the page, or for an
action its outcome as a message on the section's page. The read-only pages take GET only,
the actions POST only (405 for an admin otherwise)."""

from tests.web_permissions import Row, login

NOT_ADMIN = (403,) * 4  # student, stranger, coach, other_coach
ZERO = "00000000-0000-0000-0000-000000000000"


def admin_page(path: str, admin: object = 200) -> tuple[object, ...]:
    return (login(path), *NOT_ADMIN, admin)


def page_rows(path: str) -> list[Row]:
    return [("GET", path, {}, admin_page(path)), ("POST", path, {}, admin_page(path, 405))]


def action_rows(path: str, admin: str, data: dict[str, str] | None = None) -> list[Row]:
    return [("GET", path, {}, admin_page(path, 405)),
            ("POST", path, data or {}, admin_page(path, admin))]


FAILURES = "/ops/failures/"
APPROVALS = "/ops/approvals/"
ROWS: list[Row] = [
    *page_rows("/ops/"),
    # Refused dates: the page shows the form's error over the default period.
    ("GET", "/ops/?start=2031-03-09&end=2031-03-01", {},
     admin_page("/ops/%3Fstart%3D2031-03-09%26end%3D2031-03-01")),
    ("GET", "/ops/?days=7", {}, admin_page("/ops/%3Fdays%3D7")),
    *page_rows(FAILURES),
    *action_rows(f"{FAILURES}access/999999/retry", f"{FAILURES} error | No such session access."),
    *action_rows(f"{FAILURES}notifications/999999/retry",
                 f"{FAILURES} warning | not failed"),
    *action_rows(f"{FAILURES}tasks/{ZERO}/retry", f"{FAILURES} warning | not failed"),
    *action_rows(f"{FAILURES}tasks/{ZERO}/dismiss", f"{FAILURES} warning | not failed"),
    *action_rows(f"{FAILURES}payments/999999/retry", f"{FAILURES} error | No such payment."),
    *action_rows(f"{FAILURES}settlements/999999/retry",
                 f"{FAILURES} error | No such settlement gate."),
    *action_rows(f"{FAILURES}webhooks/999999/retry", f"{FAILURES} error | No such failed event."),
    *page_rows(APPROVALS),
    *action_rows(APPROVALS + "{app}/approve", f"{APPROVALS} success | is now a coach"),
    ("POST", APPROVALS + "999999/approve", {},
     admin_page(APPROVALS + "999999/approve", f"{APPROVALS} error | No such application.")),
    # A rejection needs its reason: without one nothing changes.
    *action_rows(APPROVALS + "{app}/reject", f"{APPROVALS} error | Give a reason"),
    ("POST", APPROVALS + "{app}/reject", {"reason": "Not yet."},
     admin_page(APPROVALS + "{app}/reject", f"{APPROVALS} success | was rejected")),
    *page_rows("/ops/settings/"),
    # Discord is not configured in these tests: the check says so without calling out.
    *action_rows("/ops/settings/check", 200),
]
