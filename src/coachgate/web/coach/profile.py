"""Coach dashboard: the profile (name, bio, specialties, zone, seats), the photo and the
rates students see (the price range of the published offers)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from coachgate.accounts import services as accounts
from coachgate.catalog import photos
from coachgate.catalog import services as catalog
from coachgate.catalog.models import CoachProfile
from coachgate.kit.errors import CoachgateError
from coachgate.kit.money import format_amount
from coachgate.web.fields import TagsField, no_control_chars, no_control_chars_but_lines

from .common import coach_required, tabs


class ProfileForm(forms.Form):
    display_name = forms.CharField(
        label="Display name", max_length=120, validators=[no_control_chars],
        help_text="The name on your public page and on your offers.")
    bio = forms.CharField(
        label="Bio", required=False, max_length=5000, validators=[no_control_chars_but_lines],
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="A few sentences about you and how you coach (at most 5000 characters).")
    specialties = TagsField(
        label="Specialties", required=False,
        help_text="Type a specialty and press Enter; up to 12, each at most 40 characters.")
    timezone = forms.ChoiceField(
        label="Time zone",
        help_text="Your weekly hours are read in this zone (a change moves them with it).")
    seat_capacity = forms.IntegerField(
        label="Seat capacity", min_value=0, max_value=10000,
        help_text="How many students with a pack you take at once.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone: forms.ChoiceField = self.fields["timezone"]  # type: ignore[assignment]  # declared above as a ChoiceField
        zone.choices = [(z, z) for z in accounts.timezone_names()]


class PhotoForm(forms.Form):
    photo = forms.FileField(
        label="New photo", help_text="JPEG, PNG or WebP, at most 5 MB and 20 megapixels.",
        widget=forms.FileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}))


def _initial(profile: CoachProfile) -> dict[str, Any]:
    return {"display_name": profile.display_name, "bio": profile.bio,
            "specialties": list(profile.specialties or []), "timezone": profile.timezone,
            "seat_capacity": profile.seat_capacity}


def rates_text(profile: CoachProfile) -> list[str]:
    """"30.00 USD – 80.00 USD" per currency of the published offers (one price: itself)."""
    out = []
    for r in catalog.coach_rates(profile):
        low, high = format_amount(r.low_minor, r.currency), format_amount(r.high_minor,
                                                                           r.currency)
        out.append(low if low == high else f"{low} – {high}")
    return out


def _page(request: HttpRequest, form: ProfileForm, photo_form: PhotoForm,
          status: int = 200) -> HttpResponse:
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by coach_required
    return render(request, "web/coach/profile.html", {
        "tabs": tabs(request), "form": form, "photo_form": photo_form, "profile": profile,
        "rates": rates_text(profile), "photo_sizes": photos.SIZES,
    }, status=status)


@coach_required
def profile_page(request: HttpRequest) -> HttpResponse:
    profile: CoachProfile = request.profile  # type: ignore[attr-defined]  # set by coach_required
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                catalog.update_coach_profile(request.user, dict(form.cleaned_data))  # type: ignore[arg-type]  # coach_required: a User
            except CoachgateError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Profile saved.")
                return redirect("coach_profile")
        profile.refresh_from_db()  # the page shows what is stored, not the refused input
        return _page(request, form, PhotoForm(), status=200)
    return _page(request, ProfileForm(initial=_initial(profile)), PhotoForm())


@coach_required
@require_POST
def photo_upload(request: HttpRequest) -> HttpResponse:
    form = PhotoForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["photo"]
        try:
            if upload.size is None or upload.size > photos.MAX_BYTES:
                messages.error(request, "The photo is larger than 5 MB.")
                return redirect("coach_profile")
            catalog.set_coach_photo(request.user, upload.read())  # type: ignore[arg-type]  # coach_required: a User
        except CoachgateError as exc:
            messages.error(request, exc.message)
            return redirect("coach_profile")
        messages.success(request, "Photo saved.")
    else:
        messages.error(request, "Choose a photo to upload (JPEG, PNG or WebP).")
    return redirect("coach_profile")


@coach_required
@require_POST
def photo_remove(request: HttpRequest) -> HttpResponse:
    catalog.remove_coach_photo(request.user)  # type: ignore[arg-type]  # coach_required: a User
    messages.success(request, "Photo removed.")
    return redirect("coach_profile")


urlpatterns: list[URLPattern] = [
    path("profile/", profile_page, name="coach_profile"),
    path("profile/photo", photo_upload, name="coach_photo_upload"),
    path("profile/photo/remove", photo_remove, name="coach_photo_remove"),
]
