"""Payment gateways behind one interface (base.PaymentGateway): offline (default), stripe."""

from __future__ import annotations

from coachgate.kit.config import conf

from .base import PaymentGateway


def get_gateway(name: str | None = None) -> PaymentGateway:
    """The configured gateway (COACHGATE["PAYMENT_GATEWAY"]), or the one named."""
    name = name or conf().PAYMENT_GATEWAY
    if name == "stripe":
        from .stripe import StripeGateway

        return StripeGateway.from_settings()
    if name == "offline":
        from .offline import OfflineGateway

        return OfflineGateway()
    raise ValueError(f"unknown payment gateway {name!r}")
