from tests.web_permissions import Row, login

ROWS: list[Row] = [
    ("GET", "/account/", {}, (login("/account/"),) + (200,) * 5),
    # An empty form is shown again with its errors (the zone is required), changing nothing.
    ("POST", "/account/", {}, (login("/account/"),) + (200,) * 5),
    ("POST", "/account/", {"display_name": "N", "timezone": "Europe/Paris"},
     (login("/account/"),) + ("/account/ success",) * 5),
]
