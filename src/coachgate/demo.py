"""Demo data for `coachgate demo`: an admin, three coaches in three time zones, offers,
availability, two students and a booked session. Built through the services, as a real
academy would do it; running it again only issues fresh tokens."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.db import transaction

from coachgate.accounts import services as accounts
from coachgate.accounts.models import User
from coachgate.catalog import services as catalog
from coachgate.kit import clock
from coachgate.kit.money import format_amount
from coachgate.scheduling import services as scheduling

DEMO_PASSWORD = "coachgate-demo"  # noqa: S105 - printed for the local demo on purpose
ADMIN = "admin@demo.coachgate.test"
COACHES = [
    ("ada@demo.coachgate.test", "Ada Lovelace", "Europe/London", ["python", "algorithms"],
     "Fifteen years of teaching programming, from first loops to system design."),
    ("grace@demo.coachgate.test", "Grace Hopper", "America/New_York", ["career", "compilers"],
     "Career coaching for engineers moving into leadership."),
    ("lord@demo.coachgate.test", "Howe Island Guitar", "Australia/Lord_Howe", ["guitar", "music"],
     "Guitar lessons from the island with the 30-minute daylight-saving shift."),
]
STUDENTS = [("sam@demo.coachgate.test", "Sam Student", "Europe/Berlin"),
            ("kim@demo.coachgate.test", "Kim Learner", "Asia/Tokyo")]


def _offers(coach_index: int) -> list[dict]:
    base = [
        {"title": "1:1 session (60 min)", "price_minor": 6000, "currency": "USD",
         "duration_minutes": 60, "delivery": "discord_voice", "session_type": "audio",
         "description": "A private hour in a Discord voice channel that opens 2 h before.",
         "buffer_after_minutes": 10,
         "intake_fields": [{"label": "What do you want to achieve?", "type": "textarea",
                            "required": True}]},
        {"title": "Group clinic (90 min, 4 seats)", "price_minor": 2500, "currency": "EUR",
         "duration_minutes": 90, "delivery": "jitsi", "session_type": "video", "capacity": 4,
         "description": "Small-group practice on a video link."},
        {"title": "Pack of 4 sessions", "price_minor": 20000, "currency": "USD",
         "duration_minutes": 45, "delivery": "zoom", "session_type": "video", "pack_size": 4,
         "description": "Four sessions bought up front."},
    ]
    return base[: 3 if coach_index == 0 else 2]


def _ensure_user(email: str, role: str, name: str, tz: str) -> User:
    user = User.objects.filter(email=email).first()
    return user or accounts.create_user(email=email, password=DEMO_PASSWORD, role=role,
                                        display_name=name, timezone=tz)


@transaction.atomic
def _create() -> None:
    admin = _ensure_user(ADMIN, "admin", "Demo Admin", "UTC")
    for i, (email, name, tz, specialties, bio) in enumerate(COACHES):
        user = _ensure_user(email, "student", name, tz)
        app = accounts.apply_as_coach(user, display_name=name, bio=bio, specialties=specialties,
                                      timezone=tz, motivation="demo")
        catalog.approve_application(admin, app.pk)
        user.refresh_from_db()
        scheduling.apply_preset(user, range(7), "morning")
        scheduling.apply_preset(user, range(5), "afternoon")
        scheduling.apply_preset(user, [1, 3], "evening")
        for data in _offers(i):
            offer = catalog.create_offer(user, data)
            catalog.set_offer_status(user, offer.pk, "published")
    students = [_ensure_user(e, "student", n, tz) for e, n, tz in STUDENTS]
    first_offer = catalog.visible_offers(None).order_by("pk").first()
    if first_offer is None:
        return
    slots = scheduling.list_slots(None, first_offer)
    if slots:
        scheduling.book_session(students[0], first_offer.pk, slots[0].start,
                                intake={"what_do_you_want_to_achieve": "Pass my interview"})


def load_demo(base_url: str) -> str:
    if not User.objects.filter(email=ADMIN).exists():
        _create()
    lines = ["", "coachgate demo is ready.", "",
             f"  Web:      {base_url}/", f"  Admin:    {base_url}/admin/",
             f"  API docs: {base_url}/api/v1/docs  (OpenAPI: {base_url}/api/v1/openapi.json)",
             "", f"Log in with any of these (password '{DEMO_PASSWORD}'), API tokens are new:"]
    for email in [ADMIN] + [c[0] for c in COACHES] + [s[0] for s in STUDENTS]:
        user = User.objects.get(email=email)
        token = accounts.issue_token(user, "demo").raw
        lines.append(f"  {user.role:8} {email:30} token {token}")
    lines += ["", "Offers and their next bookable slots:"]
    now = clock.now()
    for offer in catalog.visible_offers(None).order_by("pk"):
        tz = ZoneInfo(offer.coach.timezone)
        slots = scheduling.list_slots(None, offer, start=now, end=now + timedelta(days=7))
        shown = ", ".join(s.start.astimezone(tz).strftime("%a %H:%M") for s in slots[:3])
        lines.append(f"  #{offer.pk} {offer.title} by {offer.coach.display_name} "
                     f"({format_amount(offer.price_minor, offer.currency)}): {len(slots)} slots "
                     f"in 7 days, first {shown} {offer.coach.timezone}")
    lines += ["", "Try it:",
              f"  curl -s {base_url}/api/v1/coaches",
              f"  curl -s '{base_url}/api/v1/offers/1/slots?tz=Asia/Tokyo'",
              f"  curl -s -H 'Authorization: Bearer <student token>' {base_url}/api/v1/sessions",
              ""]
    return "\n".join(lines)
