"""A pack in a currency whose Stripe quantum is not 1: its price is spread over its sessions
in whole quanta, so what a session's outcome gives back is a refund Stripe can make
(docs/billing.md, "Amounts a gateway can move"). Real SDK, local fake, no mocks."""

from __future__ import annotations

from datetime import timedelta

from coachgate.billing import services
from coachgate.billing.models import Payment, PaymentStatus, Settlement
from coachgate.packs import services as packs
from coachgate.packs.models import PackUse
from tests.billing.test_stripe_flow import save_card
from tests.packs.helpers import make_pack_offer, slot

M = timedelta(minutes=1)


def test_a_kwd_pack_session_gives_back_what_stripe_can_refund(
        stripe_gateway, stripe_fake, coach, student, now,
        django_capture_on_commit_callbacks) -> None:
    """10.000 KWD over 3 sessions is 3.330 + 3.330 + 3.340 (not 3.333 + 3.333 + 3.334): a
    no-show on the first charges 1.670 and gives 1.660 back, which Stripe can refund."""
    offer = make_pack_offer(coach, currency="KWD", price_minor=10000, pack_size=3)
    save_card(stripe_fake, student)
    with django_capture_on_commit_callbacks(execute=True):
        pack = packs.buy_pack(student, offer.pk, now=now)
    services.run_due(now=now)
    paid = Payment.objects.get(key=f"pack:{pack.pk}")
    assert (paid.status, paid.captured_minor) == (PaymentStatus.CAPTURED, 10000)
    with django_capture_on_commit_callbacks(execute=True):
        booking = packs.book_from_pack(student, pack.pk, slot(0), now=now)
    assert PackUse.objects.get(booking=booking).value_minor == 3330
    late = booking.session.starts_at + 25 * M
    with django_capture_on_commit_callbacks(execute=True):
        services.mark_student_no_show(coach, booking.session_id, now=late)
    services.run_due(now=late)
    settled = Settlement.objects.get(booking=booking)
    assert (settled.charge_minor, settled.fee_minor, settled.payout_minor) == (1670, 170, 1500)
    paid.refresh_from_db()
    assert (paid.refund_minor, paid.refunded_minor) == (1660, 1660)
    assert [r["amount"] for r in stripe_fake.refunds.values()] == [1660]
