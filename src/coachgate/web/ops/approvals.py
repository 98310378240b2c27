"""/ops/approvals/: coach applications, approved or rejected (with a reason) in one click."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from coachgate.accounts import services as accounts
from coachgate.accounts.models import ApplicationStatus
from coachgate.catalog import services as catalog
from coachgate.kit.errors import CoachgateError

from .common import admin_required, context

PAGE = "/ops/approvals/"


class RejectForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=2000, strip=True,
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="The applicant sees it.")


class ApproveForm(forms.Form):
    note = forms.CharField(label="Note (optional)", max_length=2000, required=False,
                           strip=True)


@admin_required
@require_GET
def approvals(request: HttpRequest) -> HttpResponse:
    apps = accounts.visible_applications(request.admin)  # type: ignore[attr-defined]  # set by admin_required
    pending = [a for a in apps if a.status == ApplicationStatus.PENDING]
    pending.sort(key=lambda a: a.submitted_at)  # oldest first: first come, first served
    decided = [a for a in apps if a.status != ApplicationStatus.PENDING][:50]
    return render(request, "web/ops/approvals.html",
                  context(request, pending=pending, decided=decided))


@admin_required
@require_POST
def approve(request: HttpRequest, app_id: int) -> HttpResponse:
    form = ApproveForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        app = catalog.approve_application(request.admin, app_id, note=note)  # type: ignore[attr-defined]  # set by admin_required
    except CoachgateError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{app.display_name} is now a coach.")
    return redirect(PAGE)


@admin_required
@require_POST
def reject(request: HttpRequest, app_id: int) -> HttpResponse:
    form = RejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a reason to reject an application: the applicant sees it.")
        return redirect(PAGE)
    try:
        app = accounts.reject_application(request.admin, app_id,  # type: ignore[attr-defined]  # set by admin_required
                                          note=form.cleaned_data["reason"])
    except CoachgateError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{app.display_name}'s application was rejected.")
    return redirect(PAGE)


urlpatterns = [
    path("approvals/", approvals, name="ops_approvals"),
    path("approvals/<int:app_id>/approve", approve, name="ops_approve"),
    path("approvals/<int:app_id>/reject", reject, name="ops_reject"),
]
