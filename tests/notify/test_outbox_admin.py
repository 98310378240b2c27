"""Admins see the outbox and can retry failed notifications (never abandoned ones)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.test import Client

from coachgate.notify import services
from coachgate.notify.models import Notification, Status
from tests.factories import make_admin, make_student

NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


def test_admin_lists_filters_and_retries_failed_notifications(db, dummy_tasks):
    admin, student = make_admin(), make_student()
    rows = [services.notify(student, "session_cancelled", {"offer_title": f"T{i}"},
                            key=f"outbox-key-{i}", channels=("email",), now=NOW)[0]
            for i in range(3)]
    Notification.objects.filter(pk=rows[0].pk).update(status=Status.FAILED, attempts=6,
                                                      last_error="gave up")
    Notification.objects.filter(pk=rows[1].pk).update(status=Status.ABANDONED)
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/notify/notification/?status__exact=failed")
    # (distinctive keys: a two-character one can appear inside the page's CSRF token)
    assert page.status_code == 200 and "outbox-key-0" in page.content.decode()
    assert "outbox-key-1" not in page.content.decode()
    assert client.get(f"/admin/notify/notification/{rows[0].pk}/change/").status_code == 200
    r = client.post("/admin/notify/notification/", {
        "action": "retry", "_selected_action": [r.pk for r in rows]})
    assert r.status_code == 302
    statuses = {n.key: (n.status, n.attempts) for n in Notification.objects.all()}
    assert statuses == {"outbox-key-0": ("pending", 0), "outbox-key-1": ("abandoned", 0),
                        "outbox-key-2": ("pending", 0)}
