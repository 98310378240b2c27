"""Demo data for `coachgate demo`: an admin, three coaches in three time zones, offers,
availability, two students and a booked session. Built through the services, as a real
academy would do it; running it again only issues fresh tokens.

Discord is the local emulator, started in this process: every demo user is linked to an
emulator account, so Discord offers can be booked and their channels appear on time.
`--lifecycle` also books a one-minute session a minute ahead and prints its whole life.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from datetime import time as dtime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from coachgate.accounts import discord as linked
from coachgate.accounts import services as accounts
from coachgate.accounts.models import User
from coachgate.catalog import services as catalog
from coachgate.integrations.discord.emulator import DiscordEmulator
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


def _offers(coach_index: int) -> list[dict[str, Any]]:
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
         # Jitsi until the demo connects its coach to the Zoom emulator: a Zoom offer is
         # bookable only with a working Zoom connection (issue 12).
         "duration_minutes": 45, "delivery": "jitsi", "session_type": "video", "pack_size": 4,
         "description": "Four sessions bought up front."},
    ]
    return base[: 3 if coach_index == 0 else 2]


def _ensure_user(email: str, role: str, name: str, tz: str) -> User:
    user = User.objects.filter(email=email).first()
    return user or accounts.create_user(email=email, password=DEMO_PASSWORD, role=role,
                                        display_name=name, timezone=tz)


def oauth_app() -> tuple[str, str]:
    """The Discord OAuth application allauth uses (SOCIALACCOUNT_PROVIDERS, read from
    COACHGATE_DISCORD_CLIENT_ID/SECRET, which `coachgate demo` sets to cli.DEMO_DISCORD_APP
    unless they are set): the one the demo's emulator must know."""
    providers: dict[str, dict[str, Any]] = settings.SOCIALACCOUNT_PROVIDERS
    app: dict[str, str] = providers["discord"]["APP"]
    return str(app.get("client_id") or ""), str(app.get("secret") or "")


def start_discord() -> DiscordEmulator:
    """Start the local Discord emulator and point the platform at it: the guild and bot,
    and allauth's OAuth application (any redirect URI: the demo may be reached as
    127.0.0.1, localhost or another name), with the consent page, so whoever signs up can
    press "Connect Discord" and pick an emulated Discord username."""
    emu = DiscordEmulator()
    emu.start()
    guild = emu.create_guild("coachgate demo academy")
    client_id, secret = oauth_app()
    if client_id:  # none: "Connect Discord" cannot work, and the summary says so
        emu.register_oauth_app(client_id, secret, redirect_uris=None)
        emu.show_consent_page()
    linked.save_guild_config(guild_id=guild, bot_token=emu.bot_token, api_url=emu.base_url)
    return emu


def link_to_emulator(emu: DiscordEmulator, guild_id: str, user: User, *,
                     now: datetime, in_guild: bool = True) -> str:
    """Link ``user`` to a fresh emulator account, as the OAuth connect flow would, and
    (by default) make them a member of the guild. Used by the demo, benchmarks and tests."""
    uid = emu.create_user(user.email.split("@")[0])
    token = emu.issue_user_token(uid)
    if in_guild:
        emu.add_member(guild_id, uid)
    linked.link_discord_account(user, discord_user_id=uid, username=user.display_name
                                or user.email, access_token=token["access_token"],
                                refresh_token=token["refresh_token"],
                                expires_at=now + timedelta(days=7),
                                scopes="identify guilds.join", now=now)
    if in_guild:
        linked.record_guild_membership(uid, True, now=now)
    return uid


def link_everyone(emu: DiscordEmulator) -> None:
    """Link every demo user to a fresh emulator account (what the OAuth connect flow does),
    and everyone who connected Discord in an earlier run of the demo (their accounts were
    in that run's emulator, which is gone), so a restart keeps them verified."""
    cfg = linked.guild_settings()
    if cfg is None:
        raise RuntimeError("start_discord() configures the guild first")
    now = clock.now()
    users = User.objects.filter(Q(email__endswith="@demo.coachgate.test")
                                | Q(discord_link__isnull=False)).distinct().order_by("pk")
    for user in users:
        link_to_emulator(emu, cfg.guild_id, user, now=now)


def _create() -> None:
    _create_catalog()
    # The booking is made outside that transaction: booking owns its transaction.
    students = [_ensure_user(e, "student", n, tz) for e, n, tz in STUDENTS]
    first_offer = catalog.visible_offers(None).order_by("pk").first()
    if first_offer is None:
        return
    slots = scheduling.list_slots(None, first_offer)
    if slots:
        scheduling.book_session(students[0], first_offer.pk, slots[0].start,
                                intake={"what_do_you_want_to_achieve": "Pass my interview"})


@transaction.atomic
def _create_catalog() -> None:
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


def _create_users() -> None:
    _ensure_user(ADMIN, "admin", "Demo Admin", "UTC")
    for email, name, tz, *_ in COACHES:
        _ensure_user(email, "student", name, tz)
    for email, name, tz in STUDENTS:
        _ensure_user(email, "student", name, tz)


def _where_to_click(base_url: str, emu: DiscordEmulator | None) -> list[str]:
    """The summary's first part: who to log in as and where to click."""
    width = max(len(e) for e in [ADMIN, *(c[0] for c in COACHES), *(s[0] for s in STUDENTS)])
    coach_names = ", ".join(c[1] for c in COACHES)
    lines = [f"Open {base_url}/ and log in (every demo account's password is "
             f"'{DEMO_PASSWORD}'):",
             f"  Admin    {ADMIN:{width}}  -> {base_url}/ops/  admin console: statistics, "
             f"failures, coach approvals, settings (Django admin: {base_url}/admin/)"]
    for i, (email, *_rest) in enumerate(COACHES):
        what = (f"coach dashboard: profile, availability, offers, sessions, earnings "
                f"({coach_names})" if i == 0 else "coach dashboard")
        lines.append(f"  Coach    {email:{width}}  -> {base_url}/coach/  {what}")
    for i, (email, *_rest) in enumerate(STUDENTS):
        what = ("booked sessions, Join buttons, the Discord card" if i == 0
                else "booked sessions")
        lines.append(f"  Student  {email:{width}}  -> {base_url}/sessions/  {what}")
    lines += ["", f"  Or be new: sign up at {base_url}/accounts/signup/, press \"Connect "
                  f"Discord\" on {base_url}/sessions/, then book a coach from {base_url}/."]
    client_id, _secret = oauth_app()
    if emu is not None:
        cfg = linked.guild_settings()
        connect = (f"OAuth app {client_id!r}: Connect Discord shows the emulator's consent "
                   f"page, where you pick a Discord username" if client_id else
                   "Connect Discord is off: COACHGATE_DISCORD_CLIENT_ID is empty")
        lines += ["", f"  Discord:  local emulator at {emu.base_url} (guild "
                      f"{cfg.guild_id if cfg else '?'}); {connect}"]
    if "filebased" in settings.EMAIL_BACKEND:
        lines.append(f"  Mail:     written to {settings.EMAIL_FILE_PATH}/")
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        lines.append(f"  Data:     {settings.DATA_DIR}  (`./run demo --reset` starts again "
                     f"from fresh demo data; without it the demo keeps its data)")
    lines.append(f"  API docs: {base_url}/api/v1/docs  (OpenAPI: {base_url}/api/v1/openapi.json)")
    return lines


def load_demo(base_url: str, emu: DiscordEmulator | None = None) -> str:
    if not User.objects.filter(email=ADMIN).exists():
        if emu is not None:
            _create_users()
            link_everyone(emu)
        _create()
    elif emu is not None:
        link_everyone(emu)
    lines = ["", "coachgate demo is ready.", "", *_where_to_click(base_url, emu), "",
             f"API tokens (new at every start; password for the web: '{DEMO_PASSWORD}'):"]
    for email in [ADMIN] + [c[0] for c in COACHES] + [s[0] for s in STUDENTS]:
        user = User.objects.filter(email=email).first()
        if user is None:  # renamed in the demo: nothing to print for it
            continue
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


LIFECYCLE_COACH = "demo-coach@demo.coachgate.test"
LIFECYCLE_POLICY = {"grant_before_s": 20, "revoke_after_s": 10, "join_window_before_s": 10,
                    "reminders_before_s": [30]}


def _lifecycle_offer() -> int:
    """A coach (UTC) with a one-minute Discord offer on second gates; run_lifecycle opens
    the minute it books."""
    from coachgate.catalog.models import Offer

    offer = Offer.objects.filter(coach__user__email=LIFECYCLE_COACH).first()
    if offer is not None:
        return offer.pk
    with transaction.atomic():
        admin = User.objects.get(email=ADMIN)
        user = _ensure_user(LIFECYCLE_COACH, "student", "Demo Coach", "UTC")
        app = accounts.apply_as_coach(user, display_name="Demo Coach", bio="Always on.",
                                      specialties=["demo"], timezone="UTC", motivation="demo")
        catalog.approve_application(admin, app.pk)
        user.refresh_from_db()
        offer = catalog.create_offer(user, {
            "title": "Demo: one-minute session", "price_minor": 100, "currency": "USD",
            "duration_minutes": 1, "min_notice_minutes": 0,
            "delivery": "discord_voice", "session_type": "audio",
            "access_policy": LIFECYCLE_POLICY})
        catalog.set_offer_status(user, offer.pk, "published")
    return offer.pk


def _open_minute(start: datetime) -> datetime:
    """Make the lifecycle coach available for exactly the minute from ``start`` (or the next
    one, at midnight): slots step at least 5 minutes from the start of an availability
    range, so the demo's range is that minute alone. Returns the slot's start."""
    coach = User.objects.get(email=LIFECYCLE_COACH)
    if start.time() >= dtime(23, 59):
        start += timedelta(minutes=1)  # a range ends on its own day
    scheduling.set_weekly_availability(coach, [])  # demo databases from before had all day
    for old in scheduling.list_overrides(coach.coach_profile):
        scheduling.delete_override(coach, old.pk)
    scheduling.add_override(coach, day=start.date(), kind="extra", start=start.time(),
                            end=(start + timedelta(minutes=1)).time())
    return start


def run_lifecycle(emu: DiscordEmulator, out: TextIO = sys.stdout, timeout: float = 240) -> bool:
    """Book a session a minute ahead and print its life as it happens. True when the
    session went booked → granted → revoked with its channel gone."""
    from coachgate.access.models import SessionAccess
    from coachgate.billing.models import Settlement
    from coachgate.kit.money import format_amount

    offer_id = _lifecycle_offer()
    link_everyone(emu) if not linked.discord_user_id(
        User.objects.get(email=LIFECYCLE_COACH)) else None
    student = User.objects.get(email=STUDENTS[0][0])
    t0 = clock.now()
    slot_start = (t0 + timedelta(seconds=60)).replace(second=0, microsecond=0)
    if slot_start < t0 + timedelta(seconds=45):
        slot_start += timedelta(minutes=1)
    slot_start = _open_minute(slot_start)
    booking = scheduling.book_session(student, offer_id, slot_start, now=t0)
    session = booking.session

    def say(text: str) -> None:
        print(f"[demo +{(clock.now() - t0).total_seconds():5.1f}s] {text}", file=out, flush=True)

    say(f"booked session {session.pk} for {slot_start:%H:%M:%S} UTC "
        f"(1 min; access opens 20 s before, closes 10 s after). Nothing granted yet.")
    tag = f"session {session.pk}"
    seen = 0
    said: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in emu.log[seen:]:
            if tag in (entry.reason or ""):
                what = " ".join(x for x in (entry.action, entry.channel_id, entry.user_id) if x)
                say(f"Discord: {what} — {entry.reason}")
        seen = len(emu.log)
        now = clock.now()
        for label, at in (("session starts", session.starts_at),
                          ("session ends", session.ends_at)):
            if now >= at and label not in said:
                said.add(label)
                say(label)
        settled = Settlement.objects.filter(booking=booking).first()
        if settled is not None and "settled" not in said:
            said.add("settled")
            say(f"settled by the gate at the scheduled end: {settled.outcome}, charged "
                f"{format_amount(settled.charge_minor, settled.currency)} (coach "
                f"{format_amount(settled.payout_minor, settled.currency)}, platform "
                f"{format_amount(settled.fee_minor, settled.currency)}; offline gateway)")
        row = SessionAccess.objects.filter(pk=session.pk).first()
        if row is not None and row.phase == "granted" and "granted" not in said:
            said.add("granted")
            say(f"access granted: channel {row.channel_id} visible to coach and student "
                f"only; {row.discord_calls} Discord call(s) so far")
        if row is not None and row.phase == "revoked" and "settled" in said:
            say(f"access revoked and channel deleted; {row.discord_calls} Discord calls in "
                f"the whole lifecycle. Done.")
            return True
        time.sleep(0.2)
    say("timed out waiting for the lifecycle (is the worker running?)")
    return False
