"""Every payment gateway call runs outside database transactions (docs/billing.md, "Who
commits"): a slow gateway must never hold a lock (on SQLite, the one write lock).

``gateway_calls_outside_transactions`` (autouse, from tests/conftest.py) wraps every method
of every PaymentGateway implementation, for every test, and fails the call when a
transaction of the code under test is open. Tests on the ``db`` fixture run inside
pytest-django's own transaction: those atomic blocks (marked ``_from_testcase``, as Django's
``durable`` check reads them) do not count; ``transaction=True`` tests have none.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from coachgate.billing.gateways.base import PaymentGateway
from coachgate.billing.gateways.offline import OfflineGateway
from coachgate.billing.gateways.stripe import StripeGateway

GATEWAYS: tuple[type, ...] = (OfflineGateway, StripeGateway)
# Every method of the interface (a method added to it is guarded without a change here).
METHODS = tuple(name for name, value in vars(PaymentGateway).items()
                if not name.startswith("_") and callable(value))


def open_transactions() -> list[str]:
    """The databases on which the code under test has a transaction open."""
    return [conn.alias for conn in connections.all(initialized_only=True)
            if conn.in_atomic_block and any(not getattr(block, "_from_testcase", False)
                                            for block in conn.atomic_blocks)]


class GatewayCalledInTransaction(AssertionError):
    pass


def _guarded(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        open_ = open_transactions()
        if open_:
            raise GatewayCalledInTransaction(
                f"{name} was called inside a database transaction ({', '.join(open_)}): "
                "call gateways between short transactions, never inside one")
        return method(*args, **kwargs)

    return call


@pytest.fixture(autouse=True)
def gateway_calls_outside_transactions(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for cls in GATEWAYS:
        for method in METHODS:
            monkeypatch.setattr(cls, method,
                                _guarded(f"{cls.__name__}.{method}", getattr(cls, method)))
    yield
