"""The outbox: email and Discord DMs from templates, with retries, never twice.

A notification is a row, unique on (key, channel). ``notify`` inserts it (or finds it
already there) inside the caller's transaction and wakes a task on commit; ``deliver``
claims the row (pending → sending, committed) before sending, so two workers never both
send it; the sweep re-wakes rows whose task was lost.

Never twice, even after a crash: a row left in ``sending`` is *abandoned*, not resent.
The worker died after claiming it, so the message may or may not have gone out; neither
SMTP nor Discord lets us ask, and a duplicate reminder is the worse failure here than a
missing one (the web page shows the same information). Admins see abandoned rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import smtplib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template import Context, Engine, TemplateDoesNotExist
from django.utils import timezone

from coachgate.accounts import discord as accounts_discord
from coachgate.accounts.models import Role, User
from coachgate.integrations.discord.client import ActionRequired, RetryLater
from coachgate.kit import clock, due, enqueue
from coachgate.kit.config import conf
from coachgate.kit.metrics import NOTIFICATIONS
from coachgate.kit.rows import insert as insert_rows

from . import rules
from .models import Channel, Notification, Status

log = logging.getLogger(__name__)

ALL_CHANNELS: tuple[str, ...] = (Channel.EMAIL, Channel.DISCORD_DM)

# Seconds each Discord call of a DM may take (the client's per-attempt timeout).
DM_TIMEOUT = 10.0

# Plain-text templates: no HTML escaping. Their own engine, so a project template setting
# (autoescape, context processors) cannot change what a user receives.
_ENGINE = Engine(
    dirs=[str(Path(__file__).resolve().parent / "templates")],
    autoescape=False,
    libraries={"notify_format": "coachgate.notify.templatetags.notify_format"},
)


# --- Rendering ----------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def template_exists(template: str) -> bool:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", template):
        return False
    try:
        _ENGINE.get_template(f"notify/{template}/body.txt")
        _ENGINE.get_template(f"notify/{template}/subject.txt")
    except TemplateDoesNotExist:
        return False
    return True


def render(template: str, context: dict[str, Any], user: User) -> Rendered:
    """Render a notification for ``user``: times in their zone, their name filled in."""
    data = {
        "public_url": conf().PUBLIC_URL,
        **context,
        "recipient_name": user.display_name or user.email.split("@")[0] or "there",
        "recipient_timezone": user.timezone,
    }
    with timezone.override(_zone(user.timezone)):
        # A Context escapes HTML unless told not to, whatever the engine says: these are
        # plain text ("O'Brien & Sons", not "O&#x27;Brien &amp; Sons").
        subject = str(_ENGINE.get_template(f"notify/{template}/subject.txt")
                      .render(Context(data, autoescape=False)))
        body = str(_ENGINE.get_template(f"notify/{template}/body.txt")
                   .render(Context(data, autoescape=False)))
    return Rendered(subject=" ".join(subject.split()),  # one line: a header has no newline
                    body=re.sub(r"\n{3,}", "\n\n", body.strip()) + "\n")


# --- Enqueueing -----------------------------------------------------------------------


def _wake_at(pk: int, when: datetime) -> None:
    from .tasks import send_notification

    try:
        if send_notification.get_backend().supports_defer:
            send_notification.using(run_after=when).enqueue(pk)
    except Exception:
        log.exception("could not schedule a retry of notification %s; the sweep will", pk)


def notify(
    user: User, template: str, context: dict[str, Any], *, key: str,
    channels: Iterable[str] = ALL_CHANNELS, now: datetime,
) -> list[Notification]:
    """Ask for ``template`` to be sent to ``user`` on each channel, once per (key, channel).

    Works inside the caller's transaction: each insert runs in a savepoint, and the send
    task is enqueued on commit for rows created by this call only (dropped on rollback).
    A repeated call with the same key creates nothing and sends nothing again; it returns
    the existing rows.
    """
    if not template_exists(template):
        raise ValueError(f"unknown notification template {template!r}")
    wanted = list(dict.fromkeys(channels))
    unknown = [c for c in wanted if c not in Channel.values]
    if unknown:
        raise ValueError(f"unknown notification channel(s) {unknown}")
    if not key or len(key) > 200:
        raise ValueError("a notification key is 1 to 200 characters")
    payload = json.loads(json.dumps(context))  # JSON only: fail here, not in the worker
    rows: list[Notification] = []
    created: list[int] = []
    for channel in wanted:
        row = Notification.objects.filter(key=key, channel=channel).first()
        if row is None:
            try:
                with transaction.atomic():  # a savepoint inside the caller's transaction
                    row = Notification.objects.create(
                        key=key, channel=channel, user=user, template=template,
                        context=payload, status=Status.PENDING, next_attempt_at=now,
                        created_at=now,
                    )
                created.append(row.pk)
            except IntegrityError:  # a concurrent caller inserted it first
                row = Notification.objects.get(key=key, channel=channel)
        rows.append(row)
    _enqueue_sends(created)
    return rows


def _enqueue_sends(ids: Iterable[int]) -> None:
    """The send task of each row, once the caller's transaction commits (kit.enqueue; a
    failure to enqueue is logged: the row is the truth, and the sweep wakes it later)."""
    from .tasks import send_notification

    for pk in ids:
        enqueue.enqueue(send_notification, pk)


def notify_new(user: User, template: str, context: dict[str, Any], *, key: str,
               channels: Iterable[str] = ALL_CHANNELS, now: datetime) -> None:
    """``notify`` for a key that cannot have rows yet (the confirmation of a booking made in
    this transaction): one INSERT for every channel instead of a read and an insert each.
    Should rows exist after all (a key reused), it falls back to ``notify``, which keeps
    them; a row this call inserted beside one that existed is then woken by the sweep."""
    if not template_exists(template):
        raise ValueError(f"unknown notification template {template!r}")
    payload = json.loads(json.dumps(context))  # JSON only: fail here, not in the worker
    wanted = list(dict.fromkeys(channels))
    made = [Notification(key=key, channel=channel, user=user, template=template,
                         context=payload, status=Status.PENDING, next_attempt_at=now,
                         created_at=now) for channel in wanted]
    if not insert_rows(*made, skip_conflicts=True):
        notify(user, template, context, key=key, channels=wanted, now=now)
        return
    from .tasks import send_due

    # One wake-up for every confirmation of the next half second (kit.enqueue dedupes it),
    # not a task per row. A grain ahead: the wake-up this joins cannot have started
    # before this transaction commits (the check is its last statement). Were it to, the
    # next wake-up or the sweep (LOST_AFTER) sends these.
    enqueue.wake(send_due, now + timedelta(milliseconds=due.WAKE_GRAIN_MS))


def notify_admins(
    template: str, context: dict[str, Any], *, key: str,
    channels: Iterable[str] = (Channel.EMAIL,), now: datetime,
) -> list[Notification]:
    """The same notification to every active admin, keyed per admin."""
    out: list[Notification] = []
    for admin in User.objects.filter(role=Role.ADMIN, is_active=True).order_by("pk"):
        out += notify(admin, template, context, key=f"{key}:admin:{admin.pk}",
                      channels=channels, now=now)
    return out


# --- Delivering -----------------------------------------------------------------------


class _Skip(Exception):
    """Nothing to send to (no address, no link, no bot)."""


class _Permanent(Exception):
    """Refused; retrying cannot help."""


class _Retry(Exception):
    """Not sent; try again later."""


class _Unknown(Exception):
    """It may have been sent (a timeout after the request went out): never resend."""


def _message_id(n: Notification) -> str:
    # The same Message-ID on every attempt: mail systems that see a message twice (a
    # server that accepted it but whose answer we never got) can drop the copy.
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "coachgate.local"
    digest = hashlib.sha256(f"{n.key}|{n.channel}".encode()).hexdigest()[:16]
    return f"<notification.{n.pk}.{digest}@{domain}>"


def _send_email(n: Notification, content: Rendered) -> None:
    address = n.user.email
    if not address:
        raise _Skip("the user has no email address")
    message = EmailMessage(subject=content.subject, body=content.body, to=[address],
                           headers={"Message-ID": _message_id(n)})
    try:
        message.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(code >= 500 for code in codes):
            raise _Permanent(f"recipient refused: {exc.recipients}") from exc
        raise _Retry(f"recipient deferred: {exc.recipients}") from exc
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code >= 500:
            raise _Permanent(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        raise _Retry(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:  # refused, unreachable, disconnected
        raise _Retry(f"{type(exc).__name__}: {exc}") from exc


def _never_reached_discord(exc: RetryLater) -> bool:
    """A RetryLater with an answer (429, 5xx) or a failed connection: nothing was posted.
    Without an answer after the request went out (a read timeout), it may have been."""
    if exc.status is not None:
        return True
    return isinstance(exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout)


def _send_dm(n: Notification, content: Rendered) -> None:
    recipient = accounts_discord.discord_user_id(n.user)
    if not recipient:
        raise _Skip("the user has no linked Discord account")
    client = accounts_discord.bot_client(timeout=DM_TIMEOUT)
    if client is None:
        raise _Skip("Discord is not configured")
    with client:
        try:
            channel = client.create_dm(recipient)  # the same channel every time: harmless
        except RetryLater as exc:
            raise _Retry(f"Discord asked to retry later: {exc}") from exc
        except ActionRequired as exc:
            raise _Permanent(f"Discord refused to open a DM: {exc}") from exc
        try:
            client.send_message(str(channel["id"]), rules.fit_discord_message(content.body))
        except RetryLater as exc:
            if _never_reached_discord(exc):
                raise _Retry(f"Discord asked to retry later: {exc}") from exc
            raise _Unknown(str(exc)) from exc
        except ActionRequired as exc:  # e.g. the user does not accept DMs (50007)
            raise _Permanent(f"Discord refused the DM: {exc}") from exc


def _finish(n: Notification, result: str, **changes: Any) -> Notification:
    # Only the claim that sent it may record the outcome (matched on its attempt count);
    # a row the sweep abandoned meanwhile still gets the truth we now know.
    Notification.objects.filter(
        pk=n.pk, attempts=n.attempts, status__in=[Status.SENDING, Status.ABANDONED],
    ).update(**changes)
    NOTIFICATIONS.labels(n.channel, result).inc()
    n.refresh_from_db()
    return n


def deliver(notification_id: int, *, now: datetime) -> Notification | None:
    """Send one due notification. Returns the row after the attempt, or None when it was
    not claimable (already sent or being sent, not yet due, gone).

    Call it outside a transaction (a task is the boundary): the claim must be committed
    before the message leaves, or a second worker could claim it too.
    """
    with transaction.atomic():
        claimed = Notification.objects.filter(
            pk=notification_id, status=Status.PENDING, next_attempt_at__lte=now,
        ).update(status=Status.SENDING, attempts=F("attempts") + 1, claimed_at=now)
    if not claimed:
        return None
    n = Notification.objects.select_related("user").get(pk=notification_id)
    try:
        if not n.user.is_active:
            raise _Skip("the user's account is deactivated")
        content = render(n.template, n.context, n.user)
        if n.channel == Channel.EMAIL:
            _send_email(n, content)
        else:
            _send_dm(n, content)
    except _Skip as exc:
        return _finish(n, "skipped", status=Status.SKIPPED, last_error=str(exc))
    except _Permanent as exc:
        return _finish(n, "failed", status=Status.FAILED, last_error=str(exc))
    except _Unknown as exc:
        return _finish(n, "abandoned", status=Status.ABANDONED,
                       last_error=f"outcome unknown, not resent: {exc}")
    except _Retry as exc:
        retry_at = rules.next_attempt_at(n.attempts, now)
        if retry_at is None:
            return _finish(n, "failed", status=Status.FAILED,
                           last_error=f"gave up after {n.attempts} attempts: {exc}")
        done = _finish(n, "retry", status=Status.PENDING, next_attempt_at=retry_at,
                       last_error=str(exc))
        transaction.on_commit(lambda: _wake_at(n.pk, retry_at))
        return done
    except Exception as exc:  # a bug (a template error): do not retry a broken message
        log.exception("notification %s could not be sent", n.pk)
        return _finish(n, "failed", status=Status.FAILED,
                       last_error=f"{type(exc).__name__}: {exc}")
    return _finish(n, "sent", status=Status.SENT, sent_at=now, last_error="")


SEND_DUE_BATCH = 20
SEND_DUE_BUDGET_S = 0.02


def send_due(*, now: datetime, limit: int = SEND_DUE_BATCH,
             budget_s: float = SEND_DUE_BUDGET_S) -> int:
    """Deliver pending notifications that are due, oldest first: at most ``limit`` per run
    and no more once ``budget_s`` has passed (a message takes a few milliseconds: one
    e-mail or one Discord call); returns how many were attempted. With more waiting it
    wakes itself again at once rather than carrying on, so a burst of bookings'
    confirmations never holds up an access gate queued behind it on the same worker by
    more than about one message (gates go first, priority 10). Each row is claimed on its
    own (``deliver``), so a second worker running this skips what the first took."""
    due_ids = list(Notification.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
                   .order_by("next_attempt_at").values_list("pk", flat=True)[:limit + 1])
    started = time.monotonic()
    tried = done = 0
    for pk in due_ids[:limit]:
        tried += deliver(pk, now=now) is not None
        done += 1
        if time.monotonic() - started >= budget_s:
            break
    if len(due_ids) > done:
        from .tasks import send_due as task

        enqueue.wake(task, clock.now())
    return tried


def sweep_outbox(*, now: datetime) -> int:
    """Repair the outbox. Returns how many rows it touched.

    - pending rows well past their time (their wake-up was lost) are woken again;
    - rows stuck in ``sending`` longer than STUCK_AFTER (the worker died mid-send) are
      marked abandoned and never resent (see the module docstring).
    """
    abandoned = 0
    for channel in Channel.values:
        count = Notification.objects.filter(
            channel=channel, status=Status.SENDING, claimed_at__lt=now - rules.STUCK_AFTER,
        ).update(status=Status.ABANDONED,
                 last_error="the worker stopped while sending; not resent (it may have gone "
                            "out)")
        if count:
            NOTIFICATIONS.labels(channel, "abandoned").inc(count)
            log.warning("outbox: %d %s notification(s) abandoned mid-send", count, channel)
        abandoned += count
    lost = list(Notification.objects.filter(
        status=Status.PENDING, next_attempt_at__lte=now - rules.LOST_AFTER,
    ).order_by("next_attempt_at").values_list("pk", flat=True)[:1000])
    if lost:
        _enqueue_sends(lost)
    return abandoned + len(lost)


def retry_failed(ids: Iterable[int], *, now: datetime) -> int:
    """An admin's retry of failed notifications: pending again with fresh attempts.

    Abandoned rows are not retried: whether they went out is unknown.
    """
    pks = list(Notification.objects.filter(pk__in=list(ids), status=Status.FAILED)
               .values_list("pk", flat=True))
    Notification.objects.filter(pk__in=pks, status=Status.FAILED).update(
        status=Status.PENDING, attempts=0, next_attempt_at=now, last_error="")
    if pks:
        _enqueue_sends(pks)
    return len(pks)


def failed_notifications(*, limit: int = 50) -> list[Notification]:
    """Failed sends (retries exhausted or refused), newest first: the admin's inbox."""
    return list(Notification.objects.filter(status=Status.FAILED).select_related("user")
                .order_by("-created_at")[:limit])


def retry_notification(actor: User, notification_id: int, *, now: datetime | None = None
                       ) -> bool:
    """An admin's retry of one failed notification; False when it was not failed (any more)."""
    from coachgate.kit.errors import Forbidden

    if not actor.is_admin:
        raise Forbidden("Only an admin can retry a notification.")
    return retry_failed([notification_id], now=now or clock.now()) == 1
