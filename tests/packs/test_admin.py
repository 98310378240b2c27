"""The packs admin: read-mostly pages that render, and the action that runs the gates."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from coachgate.packs import services
from coachgate.packs.models import Pack
from tests.admin_html import form_fields
from tests.packs.helpers import make_pack_offer


@pytest.fixture
def pack(coach, student, now):
    return services.buy_pack(student, make_pack_offer(coach).pk, now=now)


@pytest.mark.parametrize("path", ["/admin/packs/pack/", "/admin/packs/seat/",
                                  "/admin/packs/waitlistentry/"])
def test_admin_lists_render(client, admin, pack, path):
    client.force_login(admin)
    r = client.get(path)
    assert r.status_code == 200
    assert f'href="{path}add/"'.encode() not in r.content  # nothing is added by hand


def test_admin_pack_page_is_read_only(client, admin, pack):
    client.force_login(admin)
    r = client.get(f"/admin/packs/pack/{pack.pk}/change/")
    assert r.status_code == 200
    fields = form_fields(r.text)  # the pack's own fields, read-only (not any "20000")
    assert (fields["price_minor"], fields["remaining"], fields["size"]) == ("20000", "4", "4")
    r = client.post(f"/admin/packs/pack/{pack.pk}/change/", {"remaining": 99})
    assert r.status_code == 403
    pack.refresh_from_db()
    assert pack.remaining == 4


def test_admin_action_runs_the_due_gates(client, admin, pack):
    with time_machine.travel(pack.expires_at + timedelta(minutes=1), tick=False):
        client.force_login(admin)  # a login from 90 days ago would have expired
        r = client.post("/admin/packs/pack/", {"action": "run_gates_now", "index": "0",
                                               "_selected_action": [pack.pk]})
    assert r.status_code == 302
    assert Pack.objects.get(pk=pack.pk).status == "expired"


def test_students_cannot_open_the_admin(client, student, pack):
    client.force_login(student)
    assert client.get("/admin/packs/pack/").status_code == 302
