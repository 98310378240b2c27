"""The coach's profile page: details with specialties as tags, the photo (checked by its
content, re-encoded, served by coachgate) and the rates from the published offers."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from coachgate.catalog import photos
from coachgate.catalog.models import CoachProfile
from tests.factories import make_offer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def coach_client(client, coach):
    client.force_login(coach)
    return client


def _image(fmt: str = "PNG", size: tuple[int, int] = (800, 600), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    colour = (200, 40, 40, 128) if mode == "RGBA" else (200, 40, 40)
    Image.new(mode, size, colour).save(buf, fmt)
    return buf.getvalue()


def _upload(data: bytes, name: str = "me.png", content_type: str = "image/png"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def _profile(coach) -> CoachProfile:
    return CoachProfile.objects.get(user=coach)


def _png_bomb_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims 10 gigapixels (with a tiny, broken body)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


GOOD = {"display_name": "Ada Coach", "bio": "I coach chess.\nAnd go.",
        "specialties": ["Chess", " endgames ", "chess"], "timezone": "Asia/Tokyo",
        "seat_capacity": "7"}


def test_the_profile_page_saves_details_with_tags(coach_client, coach):
    page = coach_client.get("/coach/profile/")
    assert page.status_code == 200
    assert 'data-tags="12"' in page.text and "<textarea" in page.text
    r = coach_client.post("/coach/profile/", GOOD)
    assert r.status_code == 302 and r.url == "/coach/profile/"
    p = _profile(coach)
    assert (p.display_name, p.bio, p.specialties, p.timezone, p.seat_capacity) == (
        "Ada Coach", "I coach chess.\nAnd go.", ["Chess", "endgames"], "Asia/Tokyo", 7)
    page = coach_client.get("/coach/profile/")
    assert '<option value="endgames" selected>endgames</option>' in page.text


def test_tags_typed_without_javascript_are_split_on_commas(coach_client, coach):
    r = coach_client.post("/coach/profile/", GOOD | {"specialties": ["Chess", "go, openings,"]})
    assert r.status_code == 302
    assert _profile(coach).specialties == ["Chess", "go", "openings"]


@pytest.mark.parametrize(("change", "message"), [
    ({"specialties": [f"tag{i}" for i in range(13)]}, "At most 12 specialties"),
    ({"specialties": ["x" * 41]}, "longer than 40 characters"),
    ({"specialties": ["bad\x07bell"]}, "control characters"),
    ({"specialties": ["rtl\u202eoverride"]}, "control characters"),
    ({"display_name": "   "}, "This field is required"),
    ({"display_name": "tab\tname"}, "control characters"),
    ({"timezone": "Mars/Olympus"}, "Select a valid choice"),
    ({"seat_capacity": "-1"}, "greater than or equal to 0"),
    ({"seat_capacity": "10001"}, "less than or equal to 10000"),
    ({"seat_capacity": "many"}, "Enter a whole number"),
    ({"bio": "b" * 5001}, "at most 5000 characters"),
])
def test_bad_profile_input_is_shown_and_changes_nothing(coach_client, coach, change, message):
    before = CoachProfile.objects.filter(user=coach).values().get()
    r = coach_client.post("/coach/profile/", GOOD | change)
    assert r.status_code == 200 and message in r.content.decode()
    assert CoachProfile.objects.filter(user=coach).values().get() == before


def test_a_nul_character_is_refused_before_the_page(coach_client, coach):
    before = CoachProfile.objects.filter(user=coach).values().get()
    r = coach_client.post("/coach/profile/", GOOD | {"specialties": ["nul\x00tag"]})
    assert r.status_code == 400
    assert CoachProfile.objects.filter(user=coach).values().get() == before


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "RGBA"), ("JPEG", "RGB"), ("WEBP", "RGB")])
def test_a_photo_is_re_encoded_resized_and_served(coach_client, coach, client, fmt, mode):
    data = _image(fmt, (1600, 900), mode)
    r = coach_client.post("/coach/profile/photo", {"photo": _upload(data, "../../etc/x.exe")})
    assert r.status_code == 302
    p = _profile(coach)
    assert p.photo_version > 0
    for size in photos.SIZES:
        stored = photos.photo_path(p.pk, size).read_bytes()
        assert stored != data
        img = Image.open(io.BytesIO(stored))
        assert (img.format, img.size) == ("JPEG", (size, size))
    served = client.get(f"/media/coach/{p.pk}/128.jpg?v={p.photo_version}")
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert "immutable" in served["Cache-Control"]
    assert b"".join(served.streaming_content) == photos.photo_path(p.pk, 128).read_bytes()
    again = client.get(f"/media/coach/{p.pk}/128.jpg", HTTP_IF_NONE_MATCH=served["ETag"])
    assert again.status_code == 304 and "immutable" not in again["Cache-Control"]
    assert f"/media/coach/{p.pk}/512.jpg?v={p.photo_version}" in client.get(
        f"/coaches/{p.pk}/").text
    assert not list((photos.photo_path(p.pk, 512).parent).glob(".upload-*"))


def test_a_small_photo_is_not_enlarged(coach_client, coach):
    coach_client.post("/coach/profile/photo", {"photo": _upload(_image("PNG", (100, 300)))})
    p = _profile(coach)
    assert Image.open(photos.photo_path(p.pk, 512)).size == (100, 100)


@pytest.mark.parametrize(("data", "message"), [
    (b"GIF89a" + b"\x00" * 100, "not a JPEG, PNG or WebP"),
    (b"%PDF-1.4 not an image", "not a JPEG"),
    (b"", "Choose a photo"),
    (_png_bomb_header(), "too many pixels"),
    (_png_bomb_header(6000, 4000), "too many pixels"),
    (_image("PNG", (40, 40)), "too small"),
    (_image("PNG", (800, 600))[:200], "damaged"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000, "not a JPEG"),
    (b"\xff" * (photos.MAX_BYTES + 1), "larger than 5 MB"),
])
def test_hostile_uploads_are_refused_and_change_nothing(coach_client, coach, data, message):
    from django.contrib.messages import get_messages

    coach_client.post("/coach/profile/photo", {"photo": _upload(_image())})
    before = _profile(coach).photo_version
    stored = photos.photo_path(_profile(coach).pk, 512).read_bytes()
    r = coach_client.post("/coach/profile/photo", {"photo": _upload(data)})
    assert r.status_code == 302
    sent = [m.message for m in get_messages(r.wsgi_request)]
    assert any(message in m for m in sent), sent
    assert _profile(coach).photo_version == before
    assert photos.photo_path(_profile(coach).pk, 512).read_bytes() == stored


def test_a_gif_is_refused_whatever_its_name(coach_client, coach):
    buf = io.BytesIO()
    Image.new("RGB", (200, 200)).save(buf, "GIF")
    coach_client.post("/coach/profile/photo", {"photo": _upload(buf.getvalue(), "me.jpg",
                                                                "image/jpeg")})
    assert _profile(coach).photo_version == 0


def test_removing_the_photo_serves_404(coach_client, coach, client,
                                      django_capture_on_commit_callbacks):
    coach_client.post("/coach/profile/photo", {"photo": _upload(_image())})
    p = _profile(coach)
    assert client.get(f"/media/coach/{p.pk}/512.jpg").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        coach_client.post("/coach/profile/photo/remove")
    assert client.get(f"/media/coach/{p.pk}/512.jpg").status_code == 404
    assert not photos.photo_path(p.pk, 512).exists()


def test_photo_urls_that_are_not_photos_are_404(client, coach):
    p = _profile(coach)
    assert client.get(f"/media/coach/{p.pk}/512.jpg").status_code == 404  # none yet
    assert client.get(f"/media/coach/{p.pk}/64.jpg").status_code == 404
    assert client.get("/media/coach/999999/512.jpg").status_code == 404


def test_rates_are_the_published_offers_price_range(coach_client, coach, client):
    make_offer(coach, price_minor=3000)
    make_offer(coach, price_minor=8000)
    make_offer(coach, price_minor=99900, publish=False)
    page = coach_client.get("/coach/profile/")
    assert "30.00" in page.text and "80.00" in page.text and "999.00" not in page.text
    public = client.get(f"/coaches/{_profile(coach).pk}/")
    assert "30.00" in public.text and "80.00" in public.text


def test_the_profile_is_for_coaches_only(client, student):
    client.force_login(student)
    assert client.get("/coach/profile/").status_code == 403
    assert client.post("/coach/profile/photo").status_code == 403
