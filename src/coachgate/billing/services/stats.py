"""Figures for the admin statistics: what settlements charged, kept as fees and owe the
coaches, per currency, from one GROUP BY over ``billing_settlement_stats_idx``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Sum

from coachgate.kit.money import format_amount

from ..models import Settlement


@dataclass
class CurrencyTotals:
    currency: str
    settlements: int
    charged_minor: int  # what students paid (revenue)
    fee_minor: int  # the platform's fees
    payout_minor: int  # owed to coaches

    @property
    def charged_display(self) -> str:
        return format_amount(self.charged_minor, self.currency)

    @property
    def fee_display(self) -> str:
        return format_amount(self.fee_minor, self.currency)

    @property
    def payout_display(self) -> str:
        return format_amount(self.payout_minor, self.currency)


def money_by_currency(start: datetime, end: datetime) -> list[CurrencyTotals]:
    """Settlements made in [start, end), summed per currency."""
    rows = (Settlement.objects.filter(settled_at__gte=start, settled_at__lt=end)
            .values("currency").order_by("currency")
            .annotate(n=Count("*"), charged=Sum("charge_minor"), fees=Sum("fee_minor"),
                      payouts=Sum("payout_minor")))
    return [CurrencyTotals(r["currency"], r["n"], r["charged"] or 0, r["fees"] or 0,
                           r["payouts"] or 0) for r in rows]
