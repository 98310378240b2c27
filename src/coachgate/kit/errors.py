"""Business errors. Each carries its HTTP status and a stable machine-readable code.

Routes never build error responses by hand: they raise one of these and the API's
exception handler turns it into ``{"code", "message", "details"}``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CoachgateError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "The request could not be processed."

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(CoachgateError):
    status = 422
    code = "invalid_input"
    default_message = "Some of the input is not valid."


class Unauthenticated(CoachgateError):
    status = 401
    code = "unauthenticated"
    default_message = "Authentication is required: send 'Authorization: Bearer <token>'."


class Forbidden(CoachgateError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class NotFound(CoachgateError):
    status = 404
    code = "not_found"
    default_message = "Nothing was found there."


class Conflict(CoachgateError):
    status = 409
    code = "conflict"
    default_message = "This conflicts with the current state."


class SlotTaken(Conflict):
    code = "slot_taken"
    default_message = "That time was just booked by someone else. Please pick another slot."


class SessionFull(Conflict):
    code = "session_full"
    default_message = "Every seat of this group session is taken."


class AlreadyBooked(Conflict):
    code = "already_booked"
    default_message = "You already hold a seat in this session."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    default_message = "The session cannot move to that state from its current state."


class OfferNotBookable(Conflict):
    code = "offer_not_bookable"
    default_message = "This offer cannot be booked: it is not published by an approved coach."


class SlotNotOffered(CoachgateError):
    status = 422
    code = "slot_not_offered"
    default_message = "That start time is not one of the offer's available slots."


class PastSlot(SlotNotOffered):
    code = "slot_in_past"
    default_message = "That start time has already passed."


class CancellationNotAllowed(Conflict):
    code = "cancellation_not_allowed"
    default_message = "This session can no longer be cancelled."


class DiscordRequired(Conflict):
    code = "discord_required"
    default_message = (
        "This session takes place in a private Discord voice channel: connect your Discord "
        "account (and join the server) before booking."
    )


class GuildFull(Conflict):
    code = "guild_full"
    default_message = (
        "The Discord server has no room for another private session channel at that time. "
        "Please pick another time or ask an admin to free channels."
    )


class BookingNotCompleted(CoachgateError):
    """Something a booking needs (its access row, its charge, its confirmation) could not be
    written, so the booking was undone with it: nothing was booked."""

    status = 503
    code = "booking_not_completed"
    default_message = ("The booking could not be completed and nothing was booked. "
                       "Please try again in a moment.")


class DiscordNotConfigured(CoachgateError):
    status = 503
    code = "discord_not_configured"
    default_message = "The platform's Discord server is not configured yet. Please ask an admin."


class DiscordUnavailable(CoachgateError):
    """Discord asked us to wait (rate limit, outage): the caller may try again later."""

    status = 503
    code = "discord_unavailable"
    default_message = "Discord is not answering right now. Please try again in a moment."


class DiscordActionNeeded(CoachgateError):
    """Discord refused in a way retrying cannot fix (revoked grant, missing permission)."""

    status = 409
    code = "discord_action_required"
    default_message = (
        "Discord refused the request. Reconnect your Discord account, or ask an admin to "
        "check the bot's permissions."
    )


class VideoNotConnected(Conflict):
    code = "video_not_connected"
    default_message = ("The coach has not connected this offer's video provider, so it "
                       "cannot be booked yet.")


class VideoConnectionInvalid(Conflict):
    """The provider refused the stored grant (revoked, expired, app removed): the coach
    must connect again. Never replaced by another provider's link."""

    code = "video_connection_invalid"
    default_message = ("The coach's video connection stopped working, so this offer cannot "
                       "be booked until the coach reconnects it.")


class VideoConnectionInUse(Conflict):
    code = "video_connection_in_use"
    default_message = ("This connection is used by published offers or scheduled sessions: "
                       "move them to another provider first.")


class VideoProviderBusy(CoachgateError):
    status = 503
    code = "video_provider_unavailable"
    default_message = "The video provider is not answering right now. Please try again soon."


class OutcomeTooEarly(Conflict):
    code = "outcome_too_early"
    default_message = "It is too early to record this outcome: the no-show wait has not passed."


class ParticipantAttended(Conflict):
    code = "participant_attended"
    default_message = (
        "The meeting shows this participant joined in time, so they were not a no-show.")


class AlreadySettled(Conflict):
    code = "already_settled"
    default_message = "This session has already been settled."


class PaymentMethodRequired(Conflict):
    code = "payment_method_required"
    default_message = (
        "Save a card before booking: it is charged only after the session, by its outcome.")


class InvalidWebhookSignature(CoachgateError):
    status = 400
    code = "invalid_signature"
    default_message = "The webhook signature could not be verified."


class NoSeat(Conflict):
    code = "no_seat"
    default_message = (
        "This coach has no free seat right now. Join the waitlist to be told when one frees.")


class PackRequired(Conflict):
    code = "pack_required"
    default_message = (
        "This offer is sold as a pack: buy the pack, then book its sessions from it.")


class NotAPack(Conflict):
    code = "not_a_pack"
    default_message = "This offer is a single session, not a pack: book it directly."


class PackExpired(Conflict):
    code = "pack_expired"
    default_message = "This pack has expired: its sessions can no longer be booked."


class PackUsedUp(Conflict):
    code = "pack_used_up"
    default_message = (
        "Every session of this pack is used or already booked. Renew the pack to book more.")


class SessionStarted(CancellationNotAllowed):
    code = "session_started"
    default_message = ("This session has already started: it can no longer be cancelled. "
                       "If the coach did not come, report it; otherwise its outcome settles it.")


class IdempotencyKeyReused(CoachgateError):
    status = 422
    code = "idempotency_key_reused"
    default_message = ("This Idempotency-Key was already used for a different request. "
                       "Send a new key for a new request.")


class SeatHeld(Conflict):
    code = "seat_held"
    default_message = "You already hold a seat with this coach: no need to wait for one."


class SeatFree(Conflict):
    code = "seat_free"
    default_message = "This coach has a free seat right now: buy a pack instead of waiting."


class GatewayNotConfigured(CoachgateError):
    status = 404
    code = "gateway_not_configured"
    default_message = "This payment gateway is not configured on this platform."


class DatabaseBusy(CoachgateError):
    """Another writer held the database past the lock wait (SQLite's busy timeout,
    PostgreSQL's lock_timeout). Nothing was written; the same request can be sent again."""

    status = 503
    code = "database_busy"
    default_message = "The database is busy right now. Nothing was changed: try again shortly."
    retry_after_s: ClassVar[int] = 2  # the Retry-After header's seconds


def is_database_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is a lock wait that ran out: SQLite's "database is locked" (or
    "database table is locked") and PostgreSQL's lock_not_available (SQLSTATE 55P03)."""
    from django.db import OperationalError

    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == "55P03" or getattr(cause, "pgcode", None) == "55P03":
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text
