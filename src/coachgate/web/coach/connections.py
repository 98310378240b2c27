"""Coach dashboard: video connections (/coach/connections/): Zoom and Google Meet through
their OAuth consent, a Jitsi server by its address; each with its state, the account, the
last check, what it lacks, and remove (refused while offers or sessions use it)."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST, require_safe

from coachgate.kit import clock
from coachgate.kit.errors import CoachgateError
from coachgate.meetings import connections as conns
from coachgate.meetings.models import Provider

from .common import coach_required, tabs

PAGE = "/coach/connections/"
STATE_KEY = "video_oauth_state"


class JitsiForm(forms.Form):
    base_url = forms.CharField(label="Jitsi server", max_length=255,
                               help_text="For example https://meet.example.org")
    app_id = forms.CharField(label="App id (JWT servers only)", required=False, max_length=128)
    app_secret = forms.CharField(
        label="App secret (JWT servers only)", required=False, max_length=512,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Rooms then get tokens valid only in each session's join window.")


def _redirect_uri(request: HttpRequest, provider: str) -> str:
    return request.build_absolute_uri(reverse("coach_connection_callback", args=[provider]))


@coach_required
@require_safe
def page(request: HttpRequest) -> HttpResponse:
    now = clock.now()
    have = {c.provider: c for c in conns.connections_of(request.coach)}  # type: ignore[attr-defined]  # set by coach_required
    rows: list[dict[str, Any]] = []
    for provider in Provider:
        conn = have.get(provider)
        rows.append({"provider": provider.value, "label": provider.label, "conn": conn,
                     "oauth": provider != Provider.JITSI,
                     "configured": provider == Provider.JITSI
                     or conns.oauth_configured(provider),
                     "uses": conns.uses(request.profile.pk, provider, now=now)})  # type: ignore[attr-defined]  # set by coach_required
    jitsi = have.get(Provider.JITSI)
    form = JitsiForm(initial={"base_url": jitsi.base_url if jitsi else "",
                              "app_id": jitsi.app_id if jitsi else ""})
    return render(request, "web/coach/connections.html",
                  {"tabs": tabs(request), "rows": rows, "jitsi_form": form})


@coach_required
@require_POST
def connect_jitsi(request: HttpRequest) -> HttpResponse:
    form = JitsiForm(request.POST)
    if form.is_valid():
        try:
            conns.connect_jitsi(request.coach, **form.cleaned_data)  # type: ignore[attr-defined]  # set by coach_required
        except CoachgateError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Your Jitsi server is connected.")
    else:
        messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
    return redirect(PAGE)


@coach_required
@require_POST
def start(request: HttpRequest, provider: str) -> HttpResponse:
    if provider not in (Provider.ZOOM, Provider.GOOGLE_MEET) \
            or not conns.oauth_configured(provider):
        messages.error(request, "The platform has not set this provider up yet.")
        return redirect(PAGE)
    state = secrets.token_urlsafe(24)
    request.session[STATE_KEY] = {"state": state, "provider": provider}
    return redirect(conns.authorize_url(provider, redirect_uri=_redirect_uri(request, provider),
                                        state=state))


@coach_required
@require_safe
def callback(request: HttpRequest, provider: str) -> HttpResponse:
    expected = request.session.pop(STATE_KEY, None) or {}
    state, code = request.GET.get("state", ""), request.GET.get("code", "")
    if (not state or not secrets.compare_digest(state, str(expected.get("state", "")))
            or expected.get("provider") != provider):
        messages.error(request, "That sign-in did not start here (or expired): connect again.")
        return redirect(PAGE)
    if not code or len(code) > 2048:
        messages.error(request, "The provider did not grant access: nothing was connected.")
        return redirect(PAGE)
    try:
        conn = conns.finish_oauth(request.coach, provider, code=code,  # type: ignore[attr-defined]  # set by coach_required
                                  redirect_uri=_redirect_uri(request, provider))
    except CoachgateError as exc:
        messages.error(request, exc.message)
        return redirect(PAGE)
    if conn.missing_scopes:
        messages.warning(request, f"Connected, but without {conn.missing_scopes}: coachgate "
                         "cannot do everything a session needs. Connect again and allow it.")
    else:
        messages.success(request, f"{conn.get_provider_display()} is connected "
                         f"({conn.account_email}).")
    return redirect(PAGE)


@coach_required
@require_POST
def remove(request: HttpRequest, provider: str) -> HttpResponse:
    try:
        conns.remove_connection(request.coach, provider)  # type: ignore[attr-defined]  # set by coach_required
    except CoachgateError as exc:
        used = exc.details if isinstance(exc.details, dict) else {}
        extra = (f" ({used.get('published_offers', 0)} published offers, "
                 f"{used.get('scheduled_sessions', 0)} sessions to come)") if used else ""
        messages.error(request, exc.message + extra)
    else:
        messages.success(request, "Disconnected.")
    return redirect(PAGE)


urlpatterns: list[URLPattern] = [
    path("connections/", page, name="coach_connections"),
    path("connections/jitsi", connect_jitsi, name="coach_connect_jitsi"),
    path("connections/<slug:provider>/connect", start, name="coach_connection_start"),
    path("connections/<slug:provider>/callback", callback, name="coach_connection_callback"),
    path("connections/<slug:provider>/remove", remove, name="coach_connection_remove"),
]
