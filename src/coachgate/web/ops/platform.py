"""/ops/settings/: the platform's settings, read-only (fees, currency, gateway, the Discord
guild), and the bot check of `coachgate check` on request.

The check calls Discord (five calls, each bounded by the Discord client's 10 s timeout and
its 5 s cap on rate-limit waits), so it runs only when the admin presses the button, never
on a page load.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from coachgate.access.check import CheckReport, check_guild
from coachgate.accounts import discord as linked
from coachgate.billing.services import gateway_name
from coachgate.kit.config import conf

from .common import admin_required, context


def _settings(request: HttpRequest, report: CheckReport | None) -> HttpResponse:
    c = conf()
    guild = linked.describe_guild_config(request.admin)  # type: ignore[attr-defined]  # set by admin_required
    lines: list[dict[str, Any]] = []
    if report is not None:
        lines = [{"ok": line.startswith("[ok]"), "text": line.split("] ", 1)[-1]}
                 for line in report.lines]
    return render(request, "web/ops/settings.html", context(
        request, fee_percent=c.PLATFORM_FEE_PERCENT, no_show_percent=c.NO_SHOW_CHARGE_PERCENT,
        currency=c.DEFAULT_CURRENCY, gateway=gateway_name(),
        authorize_hours=c.AUTHORIZE_BEFORE_HOURS, public_url=c.PUBLIC_URL, guild=guild,
        report=report, lines=lines,
        pack=(c.PACK_VALID_DAYS, c.PACK_GRACE_HOURS, c.PACK_FINAL_WARNING_HOURS)))


@admin_required
@require_GET
def settings_page(request: HttpRequest) -> HttpResponse:
    return _settings(request, None)


@admin_required
@require_POST
def run_check(request: HttpRequest) -> HttpResponse:
    try:
        report = check_guild()
    except Exception as exc:  # the database or a bug: shown like a failed check line
        report = CheckReport()
        report.add(False, f"The check itself failed: {type(exc).__name__}: {exc}")
    return _settings(request, report)


urlpatterns = [
    path("settings/", settings_page, name="ops_settings"),
    path("settings/check", run_check, name="ops_check"),
]
