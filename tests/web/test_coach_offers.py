"""The coach's offers pages: the list with its counts, the four-step wizard (each step saves,
a draft resumes), the publish and archive confirmations, the picture upload, and hostile
input on every step (a clear message, nothing changed, never a 500)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import time_machine
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from coachgate.accounts import discord
from coachgate.catalog import thumbnails
from coachgate.catalog.models import Offer
from coachgate.scheduling import services as scheduling
from coachgate.web.coach import offers as pages
from tests.factories import MONDAY, make_coach, make_offer, make_student

CHECKOUT = {
    "title": "Python review", "description": "We read your code together.", "price": "60.00",
    "currency": "USD", "duration_minutes": "60", "session_type": "video", "delivery": "jitsi",
    "capacity": "1", "pack_size": "1",
    "intake-TOTAL_FORMS": "1", "intake-INITIAL_FORMS": "0", "intake-MIN_NUM_FORMS": "0",
    "intake-MAX_NUM_FORMS": "30",
    "intake-0-label": "What do you want to work on?", "intake-0-type": "textarea",
    "intake-0-required": "on", "intake-0-choices": "", "intake-0-key": "",
}
RULES = {"buffer_before_minutes": "10", "buffer_after_minutes": "5",
         "min_notice_minutes": "180", "horizon_days": "30", "max_sessions_per_day": "4",
         "slot_step_minutes": "", "free_cancellation_hours": "12"}
OPTIONS = {"grant_before_s": "120", "join_window_before_s": "5", "revoke_after_s": "60",
           "reminders": "1440, 15", "end_action": "delete", "discord_mode": "member_overwrites",
           "no_show_wait_ratio": "1/3", "min_payable_ratio": "2/3"}


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def coach(db: None, admin: Any) -> Any:
    return make_coach(admin=admin)


@pytest.fixture
def web(coach: Any) -> Client:
    client = Client()
    client.force_login(coach)
    client.raise_request_exception = True
    return client


def _image(fmt: str = "PNG", size: tuple[int, int] = (800, 600)) -> io.BytesIO:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, fmt)
    buf.seek(0)
    buf.name = f"pic.{fmt.lower()}"
    return buf


def _snapshot(offer: Offer) -> dict[str, Any]:
    offer.refresh_from_db()
    return {f.name: getattr(offer, f.name) for f in Offer._meta.fields if f.name != "updated_at"}


def _new_offer(web: Client, **changes: str) -> Offer:
    r = web.post("/coach/offers/new/checkout/", CHECKOUT | changes)
    assert r.status_code == 302, r.content.decode()[:2000]
    return Offer.objects.latest("pk")


# --- money and the sentence ------------------------------------------------------------

@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("49.99", "USD", 4999), ("50", "USD", 5000), ("0", "USD", 0), ("12,5", "EUR", 1250),
    ("500", "JPY", 500), ("500.00", "JPY", 500), ("1.5", "KWD", 1500), (" 7.10 ", "USD", 710),
])
def test_amounts_convert_to_minor_units(text: str, currency: str, minor: int) -> None:
    assert pages.to_minor(text, currency) == minor


@pytest.mark.parametrize("text", ["-5", "1e3", "", "abc", "1.234", "10000000000000",
                                  "1.2.3", "NaN", "Infinity", "٣"])
def test_bad_amounts_are_refused_with_words(text: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        pages.to_minor(text, "USD")


def test_the_policy_sentence_uses_the_settlement_rules(db: None) -> None:
    from coachgate.catalog.rules import AccessPolicy, MoneyPolicy

    text = pages.policy_text(duration=60, price_minor=10000, currency="USD", pack_size=1,
                             discord_delivery=True, access=AccessPolicy(),
                             money_policy=MoneyPolicy())
    assert text.headline == ("60 min: no-show button after 20 min, early end below 40 min, "
                             "no-show charge 50.00 USD")
    assert "you receive 90.00 USD" in text.money_lines[0]
    assert "Access opens 2 h before the start" in text.access_lines[0]
    assert "24 h and 15 min" in text.access_lines[1]
    odd = pages.policy_text(duration=90, price_minor=500, currency="JPY", pack_size=1,
                            discord_delivery=False, access=AccessPolicy(),
                            money_policy=MoneyPolicy("1/4", "3/4"))
    assert odd.headline == ("90 min: no-show button after 22 min, early end below 67 min, "
                            "no-show charge 250 JPY")


# --- the wizard ---------------------------------------------------------------------------

def test_the_four_steps_make_a_draft_that_resumes_and_publishes(web: Client, coach: Any) -> None:
    r = web.get("/coach/offers/new/")
    assert r.status_code == 302 and r.url == "/coach/offers/new/thumbnail/"
    r = web.get(r.url)
    assert r.status_code == 200 and b"Step 1 of 4" in r.content
    r = web.post("/coach/offers/new/thumbnail/", {"card_style": "forest"})
    assert r.url == "/coach/offers/new/checkout/"
    assert not Offer.objects.exists()  # nothing is created before the checkout step
    offer = _new_offer(web)
    assert (offer.status, offer.card_style, offer.price_minor, offer.currency) == (
        "draft", "forest", 6000, "USD")
    assert offer.intake_fields == [{"key": "what_do_you_want_to_work_on",
                                    "label": "What do you want to work on?",
                                    "type": "textarea", "required": True}]
    # A reload, or another day: the draft resumes at the step after the last one saved.
    r = web.get(f"/coach/offers/{offer.pk}/edit/")
    assert r.url == f"/coach/offers/{offer.pk}/edit/availability/"
    page = web.get(r.url).content.decode()
    assert "Python review" in page and "Step 3 of 4" in page
    assert '<span class="day">Mon</span> 09:00–17:00' in page and "Europe/London" in page
    r = web.post(f"/coach/offers/{offer.pk}/edit/availability/", RULES)
    assert r.url == f"/coach/offers/{offer.pk}/edit/options/"
    offer.refresh_from_db()
    assert (offer.buffer_before_minutes, offer.min_notice_minutes, offer.max_sessions_per_day,
            offer.slot_step_minutes, offer.free_cancellation_hours) == (10, 180, 4, None, 12)
    page = web.get(r.url).content.decode()
    assert ("60 min: no-show button after 20 min, early end below 40 min, no-show charge "
            "30.00 USD") in page
    r = web.post(f"/coach/offers/{offer.pk}/edit/options/",
                 OPTIONS | {"no_show_wait_ratio": "1/4", "publish": "1"})
    assert r.url == f"/coach/offers/{offer.pk}/publish/"
    offer.refresh_from_db()
    assert offer.money_policy["no_show_wait_ratio"] == "1/4" and offer.status == "draft"
    confirm = web.get(r.url).content.decode()
    assert "Publish this offer?" in confirm and "no-show button after 15 min" in confirm
    r = web.post(f"/coach/offers/{offer.pk}/publish/")
    assert r.url == "/coach/offers/?status=published"
    offer.refresh_from_db()
    assert offer.status == "published"
    assert Client().get(f"/offers/{offer.pk}/").status_code == 200


def test_the_policy_preview_follows_the_answers_without_saving(web: Client, coach: Any) -> None:
    offer = make_offer(coach, publish=False, duration_minutes=90, price_minor=9000)
    before = _snapshot(offer)
    r = web.post(f"/coach/offers/{offer.pk}/policy-preview/",
                 OPTIONS | {"no_show_wait_ratio": "1/2", "min_payable_ratio": "3/4"})
    assert b"90 min: no-show button after 45 min, early end below 67 min" in r.content
    r = web.post(f"/coach/offers/{offer.pk}/policy-preview/",
                 OPTIONS | {"no_show_wait_ratio": "3/4", "min_payable_ratio": "1/4"})
    assert b"cannot exceed the minimum payable" in r.content
    r = web.post(f"/coach/offers/{offer.pk}/policy-preview/", {"grant_before_s": "x"})
    assert r.status_code == 200 and b"Fix the fields" in r.content
    assert _snapshot(offer) == before


def test_stored_seconds_survive_an_options_save_that_leaves_them(web: Client,
                                                                 coach: Any) -> None:
    policy = {"grant_before_s": 90, "join_window_before_s": 30, "revoke_after_s": 45,
              "reminders_before_s": [50]}
    offer = make_offer(coach, publish=False, access_policy=policy)
    form = web.get(f"/coach/offers/{offer.pk}/edit/options/").context["form"]
    answers = {k: str(v) for k, v in form.initial.items()}
    r = web.post(f"/coach/offers/{offer.pk}/edit/options/", answers | {"draft": "1"})
    assert r.status_code == 302
    offer.refresh_from_db()
    assert (offer.access_policy["grant_before_s"], offer.access_policy["revoke_after_s"],
            offer.access_policy["reminders_before_s"]) == (90, 45, [50])


def test_intake_rows_are_edited_without_json(web: Client, coach: Any) -> None:
    offer = make_offer(coach, publish=False, intake_fields=[
        {"label": "Level", "type": "choice", "choices": ["New", "Pro"], "required": True},
        {"label": "Repo", "type": "url"}])
    page = web.get(f"/coach/offers/{offer.pk}/edit/checkout/")
    assert page.context["formset"].total_form_count() == 2
    data = CHECKOUT | {"intake-TOTAL_FORMS": "3", "intake-INITIAL_FORMS": "2",
                       "intake-0-key": "level", "intake-0-label": "Your level",
                       "intake-0-type": "choice", "intake-0-choices": "New, Mid , Pro",
                       "intake-0-required": "on",
                       "intake-1-key": "repo", "intake-1-label": "Repo", "intake-1-type": "url",
                       "intake-1-DELETE": "on",
                       "intake-2-label": "", "intake-2-type": "text"}
    r = web.post(f"/coach/offers/{offer.pk}/edit/checkout/", data)
    assert r.status_code == 302
    offer.refresh_from_db()
    assert offer.intake_fields == [{"key": "level", "label": "Your level", "type": "choice",
                                    "required": True, "choices": ["New", "Mid", "Pro"]}]
    # Without JavaScript, "Add a question" shows one more row and saves nothing.
    r = web.post(f"/coach/offers/{offer.pk}/edit/checkout/",
                 data | {"add_intake": "1", "title": "Changed"})
    assert r.status_code == 200 and r.context["formset"].total_form_count() == 4
    offer.refresh_from_db()
    assert offer.title == "Python review"


def test_a_service_refusal_lands_on_the_row_with_the_answers_kept(web: Client,
                                                                  coach: Any) -> None:
    offer = make_offer(coach, publish=False)
    before = _snapshot(offer)
    data = CHECKOUT | {"title": "Kept title", "intake-TOTAL_FORMS": "2",
                       "intake-0-label": "Same", "intake-1-label": "Same",
                       "intake-1-type": "text", "intake-0-type": "choice",
                       "intake-0-choices": ""}
    r = web.post(f"/coach/offers/{offer.pk}/edit/checkout/", data)
    assert r.status_code == 200
    page = r.content.decode()
    assert "A choice field needs choices." in page and 'value="Kept title"' in page
    assert _snapshot(offer) == before


HOSTILE_CHECKOUT = [
    ({"price": "-5"}, "Enter an amount such as 49.99"),
    ({"price": "99999999999999"}, "The price is too large"),
    ({"price": "9" * 40}, "at most 32 characters"),
    ({"price": "9" * 30}, "Enter an amount such as 49.99"),
    ({"price": "10000000000.01"}, "The price is too large"),
    ({"price": "1.234"}, "USD has 2 decimals at most"),
    ({"price": "1.5", "currency": "JPY"}, "JPY has no decimals"),
    ({"currency": "XXX"}, "Select a valid choice"),
    ({"currency": "usd"}, "Select a valid choice"),
    ({"duration_minutes": "0"}, "greater than or equal to 1"),
    ({"duration_minutes": "99999999999999999999999"}, "less than or equal to 1440"),
    ({"duration_minutes": "1e3"}, "Enter a whole number"),
    ({"capacity": "-1"}, "greater than or equal to 1"),
    ({"pack_size": "101"}, "less than or equal to 100"),
    ({"title": ""}, "This field is required"),
    ({"title": "x" * 161}, "at most 160 characters"),
    ({"title": "   "}, "This field is required"),
    ({"delivery": "carrier_pigeon"}, "Select a valid choice"),
    ({"session_type": "telepathy"}, "Select a valid choice"),
    ({"intake-0-type": "file"}, "Select a valid choice"),
    ({"intake-0-label": "x" * 201}, "at most 200 characters"),
    ({"intake-0-key": "k" * 61}, "at most 60 characters"),
    ({"intake-TOTAL_FORMS": "31"}, "Please submit at most 30 forms"),
    ({"intake-TOTAL_FORMS": "x"}, "ManagementForm data is missing or has been tampered with"),
    ({"delivery": "discord_voice"}, "an admin has not set it up yet"),
]


@pytest.mark.parametrize(("changes", "words"), HOSTILE_CHECKOUT,
                         ids=[str(c)[:60] for c, _ in HOSTILE_CHECKOUT])
def test_hostile_checkout_input_changes_nothing(web: Client, coach: Any, changes: dict[str, str],
                                                words: str) -> None:
    offer = make_offer(coach, publish=False)
    before = _snapshot(offer)
    r = web.post(f"/coach/offers/{offer.pk}/edit/checkout/", CHECKOUT | changes)
    assert r.status_code == 200
    assert words in r.content.decode().replace("&#x27;", "'")
    assert _snapshot(offer) == before
    r = web.post("/coach/offers/new/checkout/", CHECKOUT | changes)
    assert r.status_code == 200 and Offer.objects.count() == 1


def test_nul_characters_and_ten_thousand_rows_are_refused_before_any_view(
        web: Client, coach: Any) -> None:
    offer = make_offer(coach, publish=False)
    before = _snapshot(offer)
    web.raise_request_exception = False
    r = web.post(f"/coach/offers/{offer.pk}/edit/checkout/", CHECKOUT | {"title": "a\x00b"})
    assert r.status_code == 400
    rows = {f"intake-{i}-label": f"Q{i}" for i in range(10_000)}
    r = web.post(f"/coach/offers/{offer.pk}/edit/checkout/",
                 CHECKOUT | rows | {"intake-TOTAL_FORMS": "10000"})
    assert r.status_code == 400  # Django's DATA_UPLOAD_MAX_NUMBER_FIELDS: a 400, never a 500
    assert _snapshot(offer) == before


HOSTILE_RULES = [
    ({"buffer_before_minutes": "-1"}, "greater than or equal to 0"),
    ({"buffer_after_minutes": "721"}, "less than or equal to 720"),
    ({"min_notice_minutes": "9" * 30}, "less than or equal to"),
    ({"horizon_days": "0"}, "greater than or equal to 1"),
    ({"max_sessions_per_day": "97"}, "less than or equal to 96"),
    ({"slot_step_minutes": "4"}, "greater than or equal to 5"),
    ({"free_cancellation_hours": "2.5"}, "Enter a whole number"),
]


@pytest.mark.parametrize(("changes", "words"), HOSTILE_RULES,
                         ids=[str(c)[:60] for c, _ in HOSTILE_RULES])
def test_hostile_booking_rules_change_nothing(web: Client, coach: Any, changes: dict[str, str],
                                              words: str) -> None:
    offer = make_offer(coach, publish=False)
    before = _snapshot(offer)
    r = web.post(f"/coach/offers/{offer.pk}/edit/availability/", RULES | changes)
    assert r.status_code == 200 and words in r.content.decode()
    assert _snapshot(offer) == before


HOSTILE_OPTIONS = [
    ({"no_show_wait_ratio": "1e-999999999"}, "short fraction like 1/3"),
    ({"no_show_wait_ratio": "1/0"}, "cannot divide by zero"),
    ({"no_show_wait_ratio": "3/2"}, "strictly between 0 and 1"),
    ({"no_show_wait_ratio": "3/4", "min_payable_ratio": "1/4"}, "cannot exceed"),
    ({"grant_before_s": "-1"}, "greater than or equal to 0"),
    ({"grant_before_s": "1", "join_window_before_s": "1"}, None),  # valid: saved
    ({"revoke_after_s": "43201"}, "less than or equal to 43200"),
    ({"reminders": "1, 2, 3, 4, 5, 6"}, "At most 5 reminders"),
    ({"reminders": "soon"}, "whole number of minutes"),
    ({"reminders": "-5"}, "whole number of minutes"),
    ({"reminders": "²"}, "whole number of minutes"),
    ({"reminders": "9" * 50}, "whole number of minutes"),
    ({"reminders": "9" * 101}, "at most 100 characters"),
    ({"grant_before_s": "²"}, "Enter a whole number"),
    ({"end_action": "burn"}, "Select a valid choice"),
    ({"discord_mode": "everyone"}, "Select a valid choice"),
]


@pytest.mark.parametrize(("changes", "words"), HOSTILE_OPTIONS,
                         ids=[str(c)[:60] for c, _ in HOSTILE_OPTIONS])
def test_hostile_options_change_nothing(web: Client, coach: Any, changes: dict[str, str],
                                        words: str | None) -> None:
    offer = make_offer(coach, publish=False)
    before = _snapshot(offer)
    r = web.post(f"/coach/offers/{offer.pk}/edit/options/", OPTIONS | changes)
    if words is None:
        assert r.status_code == 302
        return
    assert r.status_code == 200 and words in r.content.decode().replace("&#x27;", "'")
    assert _snapshot(offer) == before


def test_discord_delivery_needs_the_platform_server(web: Client, coach: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    page = web.get("/coach/offers/new/checkout/").content.decode()
    assert "(not set up on this platform)" in page
    monkeypatch.setattr(discord, "guild_settings", lambda: discord.GuildSettings(
        api_url="http://discord.invalid", guild_id="1", bot_token="t"))
    offer = _new_offer(web, delivery="discord_voice")
    assert offer.delivery == "discord_voice"
    monkeypatch.setattr(discord, "guild_settings", lambda: None)
    confirm = web.get(f"/coach/offers/{offer.pk}/publish/").content.decode()
    assert "an admin has not set it up yet" in confirm
    r = web.post(f"/coach/offers/{offer.pk}/publish/")
    assert r.url == "/coach/offers/"
    offer.refresh_from_db()
    assert offer.status == "draft"


# --- the picture ----------------------------------------------------------------------------

def test_an_uploaded_picture_is_reencoded_and_served(web: Client, coach: Any,
                                                     committed: Any) -> None:
    r = web.post("/coach/offers/new/thumbnail/", {"card_style": "ocean",
                                                   "picture": _image("PNG")})
    assert r.status_code == 302
    pending = web.session[pages.NEW_KEY]["thumbnail"]
    assert web.get(f"/offers/pictures/{pending}").status_code == 200  # the maker sees it
    assert Client().get(f"/offers/pictures/{pending}").status_code == 404  # nobody else
    offer = _new_offer(web)
    assert offer.thumbnail == pending
    stored = Image.open(thumbnails.path_of(pending))
    assert (stored.format, stored.size) == ("JPEG", (800, 450))
    assert Client().get(f"/offers/pictures/{pending}").status_code == 404  # still a draft
    web.post(f"/coach/offers/{offer.pk}/publish/")
    r = Client().get(f"/offers/pictures/{pending}")
    assert r.status_code == 200 and r["Content-Type"] == "image/jpeg"
    # A new picture replaces the old file; removing it goes back to the card style.
    committed(web.post, f"/coach/offers/{offer.pk}/edit/thumbnail/",
              {"card_style": "violet", "picture": _image("WEBP")})
    offer.refresh_from_db()
    assert offer.thumbnail != pending and not thumbnails.exists(pending)
    web.post(f"/coach/offers/{offer.pk}/edit/thumbnail/", {"card_style": "violet",
                                                            "remove_picture": "on"})
    offer.refresh_from_db()
    assert (offer.thumbnail, offer.card_style) == ("", "violet")


def _bomb() -> io.BytesIO:
    # A PNG header claiming 30000 × 30000 pixels: refused from the header alone.
    import zlib

    buf = _image("PNG", (100, 100))
    data = bytearray(buf.getvalue())
    data[16:24] = (30000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    out = io.BytesIO(bytes(data))
    out.name = "bomb.png"
    return out


def _noise_jpeg() -> bytes:
    import random

    rng = random.Random(1)
    img = Image.frombytes("RGB", (400, 300), bytes(rng.randrange(256) for _ in range(360000)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _named(data: bytes, name: str) -> io.BytesIO:
    out = io.BytesIO(data)
    out.name = name
    return out


@pytest.mark.parametrize(("upload", "words"), [
    (lambda: _named(b"GIF89a" + b"\0" * 100, "x.gif"), "not a JPEG, PNG or WebP"),
    (lambda: _named(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.png"),
     "not a JPEG, PNG or WebP"),
    (lambda: _named(b"", "empty.png"), "The submitted file is empty"),
    (lambda: _named(_noise_jpeg()[:6000], "cut.jpg"), "damaged"),
    (lambda: _image("PNG", (30, 30)), "too small"),
    (_bomb, "too many pixels"),
    (lambda: _named(b"\xff" * (5 * 1024 * 1024 + 1), "big.jpg"), "larger than 5 MB"),
], ids=["gif", "svg", "empty", "truncated", "tiny", "bomb", "too-big"])
def test_bad_pictures_are_refused_and_nothing_changes(web: Client, coach: Any, upload: Any,
                                                      words: str) -> None:
    offer = make_offer(coach, publish=False)
    before = _snapshot(offer)
    r = web.post(f"/coach/offers/{offer.pk}/edit/thumbnail/",
                 {"card_style": "sunset", "picture": upload()})
    assert r.status_code == 200 and words in r.content.decode()
    assert _snapshot(offer) == before
    assert not list(thumbnails.directory().glob("*.jpg")) if thumbnails.directory().exists() \
        else True


@pytest.mark.parametrize("name", ["../../etc/passwd", "x.jpg", "0" * 32 + ".png",
                                  "0" * 32 + ".jpg"])
def test_picture_names_coachgate_never_gave_are_404(web: Client, name: str) -> None:
    web.raise_request_exception = False
    assert web.get(f"/offers/pictures/{name}").status_code == 404


# --- the list -------------------------------------------------------------------------------

def test_the_list_groups_offers_with_slots_and_bookings(web: Client, coach: Any,
                                                        now: Any) -> None:
    published = make_offer(coach, title="Live one")
    make_offer(coach, publish=False, title="Still a draft")
    student = make_student()
    with time_machine.travel(now, tick=False):
        scheduling.book_session(student, published.pk, MONDAY.replace(hour=9))
    page = web.get("/coach/offers/").content.decode()
    drafts = web.get("/coach/offers/?status=draft").content.decode()
    assert "Live one" in page and "Still a draft" in page
    assert "1</strong> booking (1 upcoming)" in page
    # 14 days of 09:00–17:00 in London, hourly, less the booked hour and the past.
    assert "bookable slots in the next 14 days" in page
    assert "Live one" not in drafts and "Still a draft" in drafts


def test_another_coachs_offer_is_404_everywhere(web: Client, admin: Any) -> None:
    other = make_coach("other@test.example", admin=admin)
    theirs = make_offer(other)
    before = _snapshot(theirs)
    web.raise_request_exception = False
    for path in (f"/coach/offers/{theirs.pk}/edit/", f"/coach/offers/{theirs.pk}/edit/checkout/",
                 f"/coach/offers/{theirs.pk}/archive/"):
        assert web.get(path).status_code == 404, path
    assert web.post(f"/coach/offers/{theirs.pk}/archive/").status_code == 404
    assert web.post(f"/coach/offers/{theirs.pk}/edit/checkout/", CHECKOUT).status_code == 404
    assert _snapshot(theirs) == before


def test_archive_asks_first_and_then_locks_the_offer(web: Client, coach: Any) -> None:
    offer = make_offer(coach)
    page = web.get(f"/coach/offers/{offer.pk}/archive/").content.decode()
    assert "Archive this offer?" in page
    offer.refresh_from_db()
    assert offer.status == "published"
    r = web.post(f"/coach/offers/{offer.pk}/archive/")
    assert r.url == "/coach/offers/?status=archived"
    r = web.get(f"/coach/offers/{offer.pk}/edit/checkout/")
    assert r.url == "/coach/offers/"
    r = web.post(f"/coach/offers/{offer.pk}/publish/")
    assert r.url == "/coach/offers/"
    offer.refresh_from_db()
    assert offer.status == "archived"


# --- any text in any field -----------------------------------------------------------------

_JUNK = st.one_of(st.text(max_size=40), st.sampled_from(
    ["-1", "1e309", "NaN", "0x10", "1/0", "9" * 30, "²", "１２", "", " ", "<script>", "ocean",
     "discord_voice", "choice", "on", "30", "31"]))
_FIELDS = sorted({*CHECKOUT, *RULES, *OPTIONS, "card_style", "remove_picture", "publish",
                  "add_intake", "intake-0-DELETE"})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.sampled_from(["thumbnail", "checkout", "availability", "options"]),
       answers=st.dictionaries(st.sampled_from(_FIELDS), _JUNK, max_size=12))
def test_any_text_in_any_field_is_never_a_500(web: Client, coach: Any, step: str,
                                              answers: dict[str, str]) -> None:
    offer = Offer.objects.filter(coach__user=coach).first() or make_offer(coach, publish=False)
    web.raise_request_exception = False
    base = {"checkout": CHECKOUT, "availability": RULES, "options": OPTIONS}.get(step, {})
    answers = {k: v.replace("\x00", "") for k, v in answers.items()}
    for url in (f"/coach/offers/{offer.pk}/edit/{step}/",
                f"/coach/offers/{offer.pk}/policy-preview/", f"/coach/offers/new/{step}/"):
        r = web.post(url, base | answers)
        assert r.status_code in (200, 302), (url, r.status_code, answers)
