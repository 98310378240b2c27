"""Saving a card for later charges (a SetupIntent with Stripe)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from coachgate.accounts.models import User
from coachgate.kit import clock
from coachgate.kit.config import conf
from coachgate.kit.errors import (
    NotFound,
)

from ..gateways import get_gateway
from ..models import (
    BillingProfile,
    Payment,
    PaymentStatus,
)
from ._common import _wake_on_commit

log = logging.getLogger(__name__)


@dataclass
class CardSetupView:
    gateway: str
    status: str
    setup_ref: str
    client_secret: str
    publishable_key: str
    has_card: bool


def start_card_setup(user: User) -> CardSetupView:
    """Begin saving a card. The gateway is called between two short transactions, never
    inside one. Two setups racing for one student use the same idempotency keys (the
    customer's, and the setup's from the profile as read), so they get the same objects."""
    gw = get_gateway()
    with transaction.atomic(durable=True):
        profile, _ = BillingProfile.objects.get_or_create(user=user,
                                                          defaults={"gateway": gw.name})
    customer = gw.ensure_customer(user_id=user.pk, email=user.email,
                                  existing_ref=profile.customer_ref)
    setup = gw.start_card_setup(customer_ref=customer.ref,
                                key=f"setup:{user.pk}:{profile.updated_at.timestamp()}")
    with transaction.atomic(durable=True):
        profile = BillingProfile.objects.select_for_update().get(pk=profile.pk)
        profile.gateway, profile.customer_ref, profile.setup_ref = gw.name, customer.ref, setup.ref
        fields = ["gateway", "customer_ref", "setup_ref", "updated_at"]
        if setup.payment_method_ref:
            profile.payment_method_ref = setup.payment_method_ref
            fields.append("payment_method_ref")
        profile.save(update_fields=fields)  # a card saved meanwhile (a webhook) stays
    return CardSetupView(gw.name, setup.status, setup.ref, setup.client_secret,
                         conf().STRIPE_PUBLISHABLE_KEY,
                         bool(profile.payment_method_ref))


def confirm_card_setup(user: User, *, now: datetime | None = None) -> CardSetupView:
    """After the browser finished the setup: store the saved card, retry held payments.
    The gateway is asked outside any transaction."""
    now = now or clock.now()
    profile = BillingProfile.objects.filter(user=user).first()
    if profile is None or not profile.setup_ref:
        raise NotFound("Start a card setup first.")
    setup = get_gateway(profile.gateway).card_setup(profile.setup_ref)
    if setup.status == "succeeded" and setup.payment_method_ref:
        with transaction.atomic(durable=True):
            _card_saved(profile, setup.payment_method_ref, now)
    return CardSetupView(profile.gateway, setup.status, setup.ref, "",
                         conf().STRIPE_PUBLISHABLE_KEY,
                         bool(profile.payment_method_ref))


def _card_saved(profile: BillingProfile, payment_method_ref: str, now: datetime) -> None:
    with transaction.atomic():
        profile.payment_method_ref = payment_method_ref
        profile.save(update_fields=["payment_method_ref", "updated_at"])
        # Payments refused with the old card try the new one now.
        n = Payment.objects.filter(student_id=profile.user_id,
                                   status=PaymentStatus.ACTION_NEEDED).update(next_due_at=now)
        if n:
            _wake_on_commit(now)
