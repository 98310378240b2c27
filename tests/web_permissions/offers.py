"""The coach's offers pages (web/coach/offers.py): coaches only, each their own offers (another
coach's offer is a 404), and the offer pictures, for whoever may see the offer."""

from tests.web_permissions import ALL_404, ALL_405, COACH_ONLY_PAGE, Row, login


def _coach(path: str, answers: tuple[object, ...]) -> tuple[object, ...]:
    return (login(path), *answers)


def _mine(path: str, coach: object) -> tuple[object, ...]:
    """A coach's own offer: ``coach`` (a status or where it leads); another coach's: 404."""
    return (login(path), 403, 403, coach, 404, 403)


ROWS: list[Row] = [
    ("GET", "/coach/offers/", {}, _coach("/coach/offers/", COACH_ONLY_PAGE)),
    ("GET", "/coach/offers/?status=archived&page=99", {},
     (login("/coach/offers/%3Fstatus%3Darchived%26page%3D99"), *COACH_ONLY_PAGE)),
    ("POST", "/coach/offers/", {}, ALL_405),
    ("GET", "/coach/offers/new/", {},
     _coach("/coach/offers/new/", (403, 403, "/coach/offers/new/thumbnail/",
                                    "/coach/offers/new/thumbnail/", 403))),
    ("POST", "/coach/offers/new/", {}, ALL_405),
    ("GET", "/coach/offers/new/thumbnail/", {},
     _coach("/coach/offers/new/thumbnail/", COACH_ONLY_PAGE)),
    # No style chosen: the form again with its error; a style: on to the checkout step.
    ("POST", "/coach/offers/new/thumbnail/", {},
     _coach("/coach/offers/new/thumbnail/", COACH_ONLY_PAGE)),
    ("POST", "/coach/offers/new/thumbnail/", {"card_style": "sunset"},
     _coach("/coach/offers/new/thumbnail/", (403, 403, "/coach/offers/new/checkout/",
                                             "/coach/offers/new/checkout/", 403))),
    ("GET", "/coach/offers/new/checkout/", {},
     _coach("/coach/offers/new/checkout/", COACH_ONLY_PAGE)),
    ("POST", "/coach/offers/new/checkout/", {},
     _coach("/coach/offers/new/checkout/", COACH_ONLY_PAGE)),
    # The later steps need the draft the checkout step makes.
    ("GET", "/coach/offers/new/options/", {},
     _coach("/coach/offers/new/options/",
            (403, 403, "/coach/offers/new/checkout/ info | checkout step first",
             "/coach/offers/new/checkout/ info | checkout step first", 403))),
    ("GET", "/coach/offers/new/dance/", {},
     _coach("/coach/offers/new/dance/", (403, 403, 404, 404, 403))),
    ("GET", "/coach/offers/{draft}/edit/", {},
     _mine("/coach/offers/{draft}/edit/", "/coach/offers/{draft}/edit/availability/")),
    ("POST", "/coach/offers/{draft}/edit/", {}, ALL_405),
    ("GET", "/coach/offers/{draft}/edit/thumbnail/", {},
     _mine("/coach/offers/{draft}/edit/thumbnail/", 200)),
    ("POST", "/coach/offers/{draft}/edit/thumbnail/", {},
     _mine("/coach/offers/{draft}/edit/thumbnail/", 200)),
    ("GET", "/coach/offers/{draft}/edit/checkout/", {},
     _mine("/coach/offers/{draft}/edit/checkout/", 200)),
    ("POST", "/coach/offers/{draft}/edit/checkout/", {},
     _mine("/coach/offers/{draft}/edit/checkout/", 200)),
    ("GET", "/coach/offers/{offer}/edit/availability/", {},
     _mine("/coach/offers/{offer}/edit/availability/", 200)),
    ("POST", "/coach/offers/{offer}/edit/availability/", {"horizon_days": "-1"},
     _mine("/coach/offers/{offer}/edit/availability/", 200)),
    ("GET", "/coach/offers/{offer}/edit/options/", {},
     _mine("/coach/offers/{offer}/edit/options/", 200)),
    ("POST", "/coach/offers/{offer}/edit/options/", {},
     _mine("/coach/offers/{offer}/edit/options/", 200)),
    ("GET", "/coach/offers/{offer}/edit/dance/", {},
     _mine("/coach/offers/{offer}/edit/dance/", 404)),
    ("GET", "/coach/offers/{offer}/policy-preview/", {}, ALL_405),
    ("POST", "/coach/offers/{offer}/policy-preview/", {},
     _mine("/coach/offers/{offer}/policy-preview/", 200)),
    ("GET", "/coach/offers/{draft}/publish/", {}, _mine("/coach/offers/{draft}/publish/", 200)),
    ("POST", "/coach/offers/{draft}/publish/", {},
     _mine("/coach/offers/{draft}/publish/", "/coach/offers/?status=published success")),
    # Published already: the confirmation says it cannot be, and the action refuses.
    ("POST", "/coach/offers/{offer}/publish/", {},
     _mine("/coach/offers/{offer}/publish/",
           "/coach/offers/ error | cannot go from published to published")),
    ("GET", "/coach/offers/{offer}/archive/", {}, _mine("/coach/offers/{offer}/archive/", 200)),
    ("POST", "/coach/offers/{offer}/archive/", {},
     _mine("/coach/offers/{offer}/archive/", "/coach/offers/?status=archived success")),
    ("GET", "/coach/offers/{offer}/dance/", {}, _mine("/coach/offers/{offer}/dance/", 404)),
    ("GET", "/offers/pictures/" + "0" * 32 + ".jpg", {}, ALL_404),
    ("GET", "/offers/pictures/..%2Fsecret", {}, ALL_404),
    ("POST", "/offers/pictures/" + "0" * 32 + ".jpg", {}, ALL_405),
]
