"""Fixtures for the billing tests that talk to Stripe: no mocks — the official SDK talks
HTTP to the local fake (``coachgate.integrations.stripe.fake``) on 127.0.0.1.

    def test_x(stripe_gateway, stripe_fake): ...   # gateway from settings, fake reset

``stripe_fake``: one server for the whole test session, ``reset()`` before each test (no
objects, events, requests or faults left from another test). ``stripe_gateway``: the
gateway ``get_gateway()`` builds once ``settings.COACHGATE`` says ``PAYMENT_GATEWAY=
"stripe"`` with the fake's keys and address (a new dict through pytest-django's
``settings`` fixture, restored after the test); code under test that calls
``get_gateway()`` itself gets the same configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coachgate.billing.gateways import get_gateway
from coachgate.billing.gateways.stripe import StripeGateway
from coachgate.integrations.stripe.fake import StripeFake


@pytest.fixture(scope="session")
def _stripe_fake_server() -> Iterator[StripeFake]:
    with StripeFake() as fake:
        yield fake


@pytest.fixture
def stripe_fake(_stripe_fake_server: StripeFake) -> StripeFake:
    _stripe_fake_server.reset()
    return _stripe_fake_server


@pytest.fixture
def stripe_gateway(stripe_fake: StripeFake, settings: Any) -> StripeGateway:
    settings.COACHGATE = {
        **settings.COACHGATE,
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": stripe_fake.secret_key,
        "STRIPE_PUBLISHABLE_KEY": stripe_fake.publishable_key,
        "STRIPE_WEBHOOK_SECRET": stripe_fake.webhook_secret,
        "STRIPE_API_BASE": stripe_fake.base_url,
        "STRIPE_TIMEOUT": 5.0,
        "STRIPE_MAX_NETWORK_RETRIES": 2,
    }
    gateway = get_gateway()
    assert isinstance(gateway, StripeGateway)
    return gateway
