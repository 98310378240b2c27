"""Video connections and meetings.

Secrets (OAuth tokens, a Jitsi app secret, a meeting's join link and password) are stored
encrypted (``coachgate.kit.crypto``): the columns hold ciphertext only. ``__repr__`` and
``__str__`` never show them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from coachgate.catalog.models import CoachProfile
from coachgate.kit.due import TimerRow
from coachgate.scheduling.models import Session


class Provider(models.TextChoices):
    ZOOM = "zoom", "Zoom"
    GOOGLE_MEET = "google_meet", "Google Meet"
    JITSI = "jitsi", "Jitsi"


class ConnectionState(models.TextChoices):
    ACTIVE = "active", "Working"
    INVALID = "invalid", "Needs reconnecting"


class VideoConnection(models.Model):
    """A coach's account at one video provider (at most one per provider).

    ``version`` grows by one with every token refresh: a refresh writes its new tokens only
    if the version it read is still the stored one (compare-and-swap), so two workers that
    refresh at once never overwrite each other's rotated refresh token.
    """

    coach = models.ForeignKey(CoachProfile, on_delete=models.CASCADE,
                              related_name="video_connections")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    state = models.CharField(max_length=16, choices=ConnectionState.choices,
                             default=ConnectionState.ACTIVE)
    account_id = models.CharField(max_length=128, blank=True,
                                  help_text="The provider's id of the connected account.")
    account_email = models.CharField(max_length=254, blank=True)
    plan = models.CharField(max_length=16, blank=True,
                            help_text="Zoom: basic (40-minute meetings) or licensed.")
    access_token = models.TextField(blank=True, help_text="Encrypted (Fernet).")
    refresh_token = models.TextField(blank=True, help_text="Encrypted (Fernet).")
    token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.TextField(blank=True, help_text="Granted scopes, space-separated.")
    missing_scopes = models.TextField(blank=True,
                                      help_text="Scopes coachgate needs and was not granted.")
    base_url = models.CharField(max_length=255, blank=True, help_text="Jitsi: the server.")
    app_id = models.CharField(max_length=128, blank=True, help_text="Jitsi: JWT app id.")
    app_secret = models.TextField(blank=True, help_text="Jitsi: JWT secret, encrypted.")
    version = models.PositiveIntegerField(default=0)
    refresh_lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is refreshing the tokens until then.")
    connected_at = models.DateTimeField()
    checked_at = models.DateTimeField(null=True, blank=True)
    invalid_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["coach", "provider"],
                                    name="video_connection_once_per_provider"),
            models.CheckConstraint(condition=Q(provider__in=Provider.values),
                                   name="video_connection_provider_valid"),
            models.CheckConstraint(condition=Q(state__in=ConnectionState.values),
                                   name="video_connection_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} of coach {self.coach_id} ({self.state})"

    def __repr__(self) -> str:
        return (f"<VideoConnection coach={self.coach_id} provider={self.provider} "
                f"state={self.state}>")


class MeetingState(models.TextChoices):
    PENDING = "pending", "To be created"
    LIVE = "live", "Created"
    DELETED = "deleted", "Deleted (session cancelled)"


class Meeting(TimerRow):
    """The provider's meeting of one video session: created once the session is booked,
    moved with it, deleted when it is cancelled. ``synced_*`` are what the provider was
    last told, so an unchanged session is never sent again (Zoom allows 100 creates and
    updates per user per day)."""

    session = models.OneToOneField(Session, on_delete=models.CASCADE, primary_key=True,
                                   related_name="meeting")
    connection = models.ForeignKey(VideoConnection, on_delete=models.SET_NULL, null=True,
                                   blank=True, related_name="meetings")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    state = models.CharField(max_length=16, choices=MeetingState.choices,
                             default=MeetingState.PENDING)
    external_id = models.CharField(max_length=255, blank=True,
                                   help_text="Zoom meeting id, Meet space name, Jitsi room.")
    join_url = models.TextField(blank=True, help_text="Encrypted (Fernet).")
    password = models.TextField(blank=True, help_text="Encrypted (Fernet).")
    synced_start = models.DateTimeField(null=True, blank=True)
    synced_minutes = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["next_due_at"], name="meeting_due",
                                condition=Q(next_due_at__isnull=False))]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=MeetingState.values),
                                   name="meeting_state_valid"),
            models.UniqueConstraint(fields=["provider", "external_id"],
                                    condition=~Q(external_id=""),
                                    name="meeting_external_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} meeting of session {self.session_id}"

    def __repr__(self) -> str:
        return f"<Meeting session={self.session_id} provider={self.provider} {self.state}>"


class ProviderEvent(models.Model):
    """An incoming provider event (a Zoom webhook), stored before anything is done with it.
    Zoom sends no event id, so ``natural_key`` (event, meeting instance, participant and the
    event's own time) makes a repeated delivery one row."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    natural_key = models.CharField(max_length=255)
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "natural_key"],
                                               name="provider_event_once")]


class Participation(models.Model):
    """One stay of one participant in one instance of a meeting (a host who ends and
    restarts makes a second instance). Summed across instances into meeting evidence."""

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE,
                                related_name="participations")
    instance = models.CharField(max_length=128, help_text="Zoom meeting uuid, Meet record.")
    participant = models.CharField(max_length=255,
                                   help_text="The provider's participant id or email.")
    role = models.CharField(max_length=16, help_text="host, student or other")
    joined_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["meeting", "instance", "participant", "joined_at"],
            name="participation_once")]
