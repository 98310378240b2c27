"""The coach dashboard's earnings page (/coach/earnings/) and its statement downloads, with
real bookings, settlements and payouts made through the services: the figures shown and
the CSV and JSON statements must match the ledger, and the JSON must be the API's."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from coachgate.billing import ledger
from coachgate.billing import services as billing
from coachgate.billing.models import LedgerLine, Settlement
from coachgate.scheduling import services as scheduling
from tests.clients import Api
from tests.factories import MONDAY, make_offer, make_student, token_for

START = MONDAY + timedelta(hours=10)
M = timedelta(minutes=1)
LATER = START + timedelta(days=40)  # April: every session below is settled by then


@pytest.fixture
def settled(coach, admin, now, django_capture_on_commit_callbacks):
    """Three sessions in March: completed (45.00), a student no-show (22.50) and one ended
    early (0); one in April completed (27.00 of 30.00); then a payout of 50.00."""
    offer = make_offer(coach, title="Review")
    cheap = make_offer(coach, title="Quick", price_minor=3000)
    students = [make_student(f"s{i}@test.example") for i in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        s1 = scheduling.book_session(students[0], offer.pk, START, now=now).session
        s2 = scheduling.book_session(students[1], offer.pk, START + timedelta(days=1),
                                     now=now).session
        s3 = scheduling.book_session(students[2], offer.pk, START + timedelta(days=2),
                                     now=now).session
        s4 = scheduling.book_session(students[3], cheap.pk, START + timedelta(days=31),
                                     now=now).session
    billing.complete(coach, s1.pk, now=START + 50 * M)
    billing.mark_student_no_show(coach, s2.pk, now=s2.starts_at + 25 * M)
    billing.complete(coach, s3.pk, now=s3.starts_at + 10 * M)  # early end: 0
    billing.complete(coach, s4.pk, now=s4.starts_at + 55 * M)
    billing.record_payout(admin, coach.coach_profile.pk, currency="USD", amount_minor=5000,
                          reference="wire-1", now=START + timedelta(days=35))
    return [s1, s2, s3, s4]


def _client(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_the_page_shows_balance_months_and_payouts_from_the_ledger(settled, coach):
    account = ledger.coach_account(coach.coach_profile.pk)
    owed = ledger.balance(account, "USD")
    assert owed == 4500 + 2250 + 0 + 2700 - 5000
    with time_machine.travel(LATER, tick=False):
        page = _client(coach).get("/coach/earnings/")
    assert page.status_code == 200
    text = page.text
    assert "$44.50" in text or "44.50" in text  # the balance
    months = text.split('id="months-h"')[1].split("</table>")[0]
    assert "April 2031" in months and "March 2031" in months
    assert months.index("April 2031") < months.index("March 2031")  # the latest first
    march = months.split("March 2031")[1]
    # 3 settlements, charged 50 + 25 + 0, fee 5 + 2.50, payout 45 + 22.50
    assert ">3<" in march and "75.00" in march and "7.50" in march and "67.50" in march
    april = months.split("April 2031")[1].split("March 2031")[0]
    assert ">1<" in april and "27.00" in april
    payouts = text.split('id="payouts-h"')[1].split("</section>")[0]
    assert "wire-1" in payouts and "50.00" in payouts
    total = sum(s.payout_minor for s in Settlement.objects.filter(coach=coach.coach_profile))
    assert total == 4500 + 2250 + 2700


def test_the_statement_csv_and_json_match_the_ledger_and_the_api(settled, coach):
    cid = coach.coach_profile.pk
    q = {"start": "2031-03-01", "end": "2031-04-30", "currency": "USD"}
    with time_machine.travel(LATER, tick=False):
        c = _client(coach)
        r = c.get("/coach/earnings/statement", {**q, "format": "csv"})
        assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
        assert r["Content-Disposition"] == (
            f'attachment; filename="statement-coach{cid}-20310301-20310430-USD.csv"')
        rows = list(csv.reader(io.StringIO(r.content.decode())))
        j = c.get("/coach/earnings/statement", {**q, "format": "json"})
        assert j.status_code == 200 and "attachment" in j["Content-Disposition"]
        doc = json.loads(j.content)
        # The coach's zone is London: March 1 00:00 GMT .. May 1 00:00 BST (23:00 UTC).
        api = Api(token_for(coach)).get(
            f"/coaches/{cid}/statement?from=2031-03-01T00:00:00Z"
            "&to=2031-04-30T23:00:00Z&currency=USD").json_body
    assert doc == api  # the same service and the same document as the API
    lines = list(LedgerLine.objects.filter(account=ledger.coach_account(cid))
                 .select_related("entry").order_by("at", "pk"))
    assert [x["amount_minor"] for x in doc["lines"]] == [x.amount_minor for x in lines]
    assert [x["kind"] for x in doc["lines"]] == [x.entry.kind for x in lines]
    assert (doc["opening_minor"], doc["earned_minor"], doc["paid_out_minor"],
            doc["closing_minor"]) == (0, 9450, 5000, 4450)
    assert rows[0] == ["at", "kind", "key", "session_id", "memo", "amount_minor", "currency"]
    assert rows[1][1] == "opening_balance" and rows[1][5] == "0"
    assert [int(r[5]) for r in rows[2:-1]] == [x.amount_minor for x in lines]
    assert rows[-1][1] == "closing_balance" and rows[-1][5] == "4450"


def test_a_statement_period_counts_days_in_the_viewers_zone(settled, coach):
    with time_machine.travel(LATER, tick=False):
        doc = json.loads(_client(coach).get("/coach/earnings/statement", {
            "start": "2031-03-04", "end": "2031-03-04", "currency": "USD",
            "format": "json"}).content)
    # Only the no-show of Tuesday 4 March (settled 10:25 on the 4th).
    assert [x["amount_minor"] for x in doc["lines"]] == [2250]
    assert doc["start"] == "2031-03-04T00:00:00Z" and doc["end"] == "2031-03-05T00:00:00Z"


@pytest.mark.parametrize("query", [
    {"start": "2031-04-01", "end": "2031-03-01", "currency": "USD", "format": "csv"},
    {"start": "2031-01-01", "end": "2032-06-01", "currency": "USD", "format": "csv"},
    {"start": "yesterday", "end": "2031-03-01", "currency": "USD", "format": "csv"},
    {"start": "2031-03-01", "end": "2031-03-31", "currency": "EUR", "format": "csv"},
    {"start": "2031-03-01", "end": "2031-03-31", "currency": "USD", "format": "pdf"},
    {},
])
def test_bad_statement_queries_show_the_page_with_a_clear_error(settled, coach, query):
    with time_machine.travel(LATER, tick=False):
        r = _client(coach).get("/coach/earnings/statement", query)
    assert r.status_code == 400 and r["Content-Type"].startswith("text/html")
    assert 'class="field-error"' in r.text or 'class="flash flash-error"' in r.text


def test_an_empty_practice_has_empty_states(coach, now):
    with time_machine.travel(now, tick=False):
        text = _client(coach).get("/coach/earnings/").text
    assert "nothing earned yet" in text and "No settled sessions" in text
    assert "No payouts yet" in text and "No active packs" in text
    assert 'value="USD"' in text  # the platform's currency for the statement form


def test_packs_and_seats_in_use(coach, now, django_capture_on_commit_callbacks):
    from coachgate.packs import services as packs

    offer = make_offer(coach, title="Five pack", pack_size=5, price_minor=20000)
    student = make_student("pack@test.example")
    student.display_name = "Pat Pack"
    student.save()
    with django_capture_on_commit_callbacks(execute=True):
        packs.buy_pack(student, offer.pk, now=now)
    with time_machine.travel(now, tick=False):
        text = _client(coach).get("/coach/earnings/").text
    section = text.split('id="packs-h"')[1]
    assert "Pat Pack" in section and "Five pack" in section and "5 of 5" in section
    assert "1 / 20" in text  # seats held of the coach's capacity


def test_the_statement_shown_on_the_page_has_the_same_figures(settled, coach):
    with time_machine.travel(LATER, tick=False):
        r = _client(coach).get("/coach/earnings/statement", {
            "start": "2031-03-01", "end": "2031-04-30", "currency": "USD", "format": "page"})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/html")
    shown = r.text.split('id="statement-shown"')[1].split("</section>")[0]
    assert "1 Mar 2031 – 30 Apr 2031 · USD" in shown
    for figure in ("0.00 USD", "94.50 USD", "50.00 USD", "44.50 USD"):  # open, earned, out, close
        assert figure in shown
    assert shown.count("<tr>") == 1 + 4  # the head and four ledger lines (the 0 moved nothing)
    assert "Payout <span class=\"muted\">wire-1</span>" in shown and "-50.00 USD" in shown
