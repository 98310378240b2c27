"""Become a coach: a student applies from the web, then sees the application's state
(pending, approved, or not approved with the admin's note) on the same page."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path

from coachgate.accounts import services as accounts
from coachgate.accounts.models import ApplicationStatus, Role, User
from coachgate.kit.errors import CoachgateError

from .fields import TagsField, no_control_chars, no_control_chars_but_lines


class ApplicationForm(forms.Form):
    display_name = forms.CharField(
        label="Display name", max_length=120, validators=[no_control_chars],
        help_text="The name students will see on your page.")
    bio = forms.CharField(
        label="Bio", required=False, max_length=5000, validators=[no_control_chars_but_lines],
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Who you are and how you coach; it becomes your public bio.")
    specialties = TagsField(
        label="Specialties", required=False,
        help_text="Type a specialty and press Enter; up to 12, each at most 40 characters.")
    timezone = forms.ChoiceField(
        label="Time zone", help_text="The zone your weekly hours will be set in.")
    motivation = forms.CharField(
        label="Why do you want to coach here?", required=False, max_length=2000,
        validators=[no_control_chars_but_lines], widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For the admins who review your application (not shown publicly).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone: forms.ChoiceField = self.fields["timezone"]  # type: ignore[assignment]  # declared above as a ChoiceField
        zone.choices = [(z, z) for z in accounts.timezone_names()]


@login_required
def become_a_coach(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]  # @login_required: a User
    apps = accounts.visible_applications(user) if user.role != Role.ADMIN else []
    latest = apps[0] if apps else None
    may_apply = user.role == Role.STUDENT and (
        latest is None or latest.status == ApplicationStatus.REJECTED)
    form = ApplicationForm(initial={"display_name": user.display_name,
                                    "timezone": user.timezone})
    if request.method == "POST":
        form = ApplicationForm(request.POST)
        if not may_apply:
            messages.error(request, "Only a student account without an application waiting "
                                    "for review can apply.")
            return redirect("become_a_coach")
        if form.is_valid():
            data = form.cleaned_data
            try:
                accounts.apply_as_coach(
                    user, display_name=data["display_name"].strip(), bio=data["bio"],
                    specialties=data["specialties"], timezone=data["timezone"],
                    motivation=data["motivation"])
            except CoachgateError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Application sent. An admin will review it.")
                return redirect("become_a_coach")
    return render(request, "web/apply.html", {
        "form": form, "latest": latest, "may_apply": may_apply, "earlier": apps[1:5],
    })


urlpatterns: list[URLPattern] = [
    path("become-a-coach/", become_a_coach, name="become_a_coach"),
]
