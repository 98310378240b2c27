"""/ops/failures/: one inbox of everything someone must act on, each with its cause in
words and a retry (or dismiss) that calls the owning domain's service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from coachgate.access import services as access
from coachgate.billing.services import problems as billing_problems
from coachgate.kit import failed_tasks
from coachgate.kit.errors import CoachgateError
from coachgate.notify import services as notify

from .common import admin_required, context

INBOX = "/ops/failures/"


@dataclass
class Item:
    """One thing to act on, as the inbox shows it."""

    area: str  # Discord access | Notification | Task | Payment ...
    title: str
    cause: str
    raw: str
    at: datetime | None
    retry_url: str
    retry_label: str = "Retry"
    dismiss_url: str = ""
    link: str = ""
    when_label: str = "failed"


def _when(at: datetime) -> str:
    """A session's start in the viewer's zone, named (the request's active zone)."""
    local = timezone.localtime(at)
    return f"{local:%a %-d %b %Y, %H:%M} {timezone.get_current_timezone_name()}"


def _access_items() -> list[Item]:
    items = []
    for row in access.access_needing_action():
        session = row.session
        items.append(Item(
            "Discord access", f"Session {session.pk}: {session.offer.title} with "
            f"{session.coach.display_name}, {_when(session.starts_at)}",
            access.explain_access_error(row),
            f"{row.last_error} ({row.attempts} failed run{'s' if row.attempts != 1 else ''})",
            row.updated_at, f"{INBOX}access/{session.pk}/retry", "Retry now",
            when_label="last run",
            link=f"/admin/access/sessionaccess/{session.pk}/change/"))
    return items


def _notification_items() -> list[Item]:
    return [Item("Notification", f"{n.get_channel_display()} “{n.template}” to {n.user}",
                 "It could not be sent"
                 + (f" after {n.attempts} attempt{'s' if n.attempts != 1 else ''}"
                    if n.attempts else "") + ". Retry once the address or the service works.",
                 n.last_error, n.created_at, f"{INBOX}notifications/{n.pk}/retry",
                 link=f"/admin/notify/notification/{n.pk}/change/", when_label="created")
            for n in notify.failed_notifications()]


def _task_items() -> list[Item]:
    return [Item("Background task", t.task.rsplit(".", 1)[-1] + f" ({', '.join(map(str, t.args))})",
                 f"It raised {t.exception.rsplit('.', 1)[-1] or 'an error'}. The sweeps repair "
                 "what a lost task missed; run it again once the cause is fixed, or dismiss it.",
                 t.last_line, t.finished_at, f"{INBOX}tasks/{t.id}/retry", "Run again",
                 dismiss_url=f"{INBOX}tasks/{t.id}/dismiss")
            for t in failed_tasks.failed_tasks()]


_MONEY_LABELS = {"payment": "Payment", "settlement": "Settlement", "webhook": "Gateway event"}


def _money_items() -> list[Item]:
    return [Item(_MONEY_LABELS[p.kind], p.title, p.cause, "", p.at,
                 f"{INBOX}{p.kind}s/{p.pk}/retry",
                 "Run the payment now" if p.kind == "payment" else "Retry",
                 when_label="received" if p.kind == "webhook" else "last changed")
            for p in billing_problems.problems()]


@admin_required
@require_GET
def inbox(request: HttpRequest) -> HttpResponse:
    groups = [("Discord access", "access", _access_items()),
              ("Payments and settlements", "money", _money_items()),
              ("Notifications", "notifications", _notification_items()),
              ("Background tasks", "tasks", _task_items())]
    total = sum(len(items) for _, _, items in groups)
    return render(request, "web/ops/failures.html",
                  context(request, groups=groups, total=total))


def _act(request: HttpRequest, action: Callable[[], tuple[bool, str]]) -> HttpResponse:
    """Run one retry; its outcome as a message, then back to the inbox."""
    try:
        ok, text = action()
    except CoachgateError as exc:
        messages.error(request, exc.message)
    except Exception as exc:  # the domain refused or broke again: say so, never a 500
        messages.error(request, f"The retry failed: {type(exc).__name__}: {exc}")
    else:
        (messages.success if ok else messages.warning)(request, text)
    return redirect(INBOX)


@admin_required
@require_POST
def retry_access(request: HttpRequest, session_id: int) -> HttpResponse:
    def run() -> tuple[bool, str]:
        result = access.retry_access(request.admin, session_id)  # type: ignore[attr-defined]  # set by admin_required
        if result.outcome == "ok":
            return True, f"Session {session_id}'s access works again ({result.phase})."
        if result.outcome == "busy":
            return False, f"Session {session_id} is being run by the worker; look again shortly."
        return False, f"Session {session_id} still fails: {result.error}"
    return _act(request, run)


@admin_required
@require_POST
def retry_notification(request: HttpRequest, pk: int) -> HttpResponse:
    def run() -> tuple[bool, str]:
        if notify.retry_notification(request.admin, pk):  # type: ignore[attr-defined]  # set by admin_required
            return True, "The notification is queued to be sent again."
        return False, "That notification is not failed (any more): nothing to retry."
    return _act(request, run)


@admin_required
@require_POST
def retry_task(request: HttpRequest, task_id: UUID) -> HttpResponse:
    def run() -> tuple[bool, str]:
        if failed_tasks.retry_task(str(task_id)):
            return True, "The task is queued to run again."
        return False, "That task is not failed (any more): nothing to run."
    return _act(request, run)


@admin_required
@require_POST
def dismiss_task(request: HttpRequest, task_id: UUID) -> HttpResponse:
    def run() -> tuple[bool, str]:
        if failed_tasks.dismiss_task(str(task_id)):
            return True, "The failed task was dismissed."
        return False, "That task is not failed (any more): nothing to dismiss."
    return _act(request, run)


def _money(kind: str) -> Any:
    @admin_required
    @require_POST
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        actor = request.admin  # type: ignore[attr-defined]  # set by admin_required

        def run() -> tuple[bool, str]:
            if kind == "payment":
                if billing_problems.retry_payment(actor, pk):
                    return True, f"Payment {pk}: the gateway accepted the step."
                return False, f"Payment {pk} still needs attention (see its cause)."
            if kind == "settlement":
                billing_problems.retry_settlement(actor, pk)
                return True, f"Session {pk} was settled."
            status = billing_problems.retry_webhook(actor, pk)
            return True, f"The event was processed again: {status}."
        return _act(request, run)

    view.__name__ = f"retry_{kind}"
    return view


urlpatterns = [
    path("failures/", inbox, name="ops_failures"),
    path("failures/access/<int:session_id>/retry", retry_access, name="ops_retry_access"),
    path("failures/notifications/<int:pk>/retry", retry_notification,
         name="ops_retry_notification"),
    path("failures/tasks/<uuid:task_id>/retry", retry_task, name="ops_retry_task"),
    path("failures/tasks/<uuid:task_id>/dismiss", dismiss_task, name="ops_dismiss_task"),
    path("failures/payments/<int:pk>/retry", _money("payment"), name="ops_retry_payment"),
    path("failures/settlements/<int:pk>/retry", _money("settlement"),
         name="ops_retry_settlement"),
    path("failures/webhooks/<int:pk>/retry", _money("webhook"), name="ops_retry_webhook"),
]
