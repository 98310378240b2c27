"""Discord permission bits and Discord's documented permission algorithm, as pure functions.

https://discord.com/developers/docs/topics/permissions

Used by the emulator (to refuse what Discord would refuse) and by checks that explain what
the bot or a member can do in a channel. Bits are Python ints; Discord sends them as
decimal strings (``"1024"``), which ``parse`` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CREATE_INSTANT_INVITE = 1 << 0
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_AUDIT_LOG = 1 << 7
PRIORITY_SPEAKER = 1 << 8
STREAM = 1 << 9
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
SEND_TTS_MESSAGES = 1 << 12
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
VIEW_GUILD_INSIGHTS = 1 << 19
CONNECT = 1 << 20
SPEAK = 1 << 21
MUTE_MEMBERS = 1 << 22
DEAFEN_MEMBERS = 1 << 23
MOVE_MEMBERS = 1 << 24
USE_VAD = 1 << 25
CHANGE_NICKNAME = 1 << 26
MANAGE_NICKNAMES = 1 << 27
MANAGE_ROLES = 1 << 28
MANAGE_WEBHOOKS = 1 << 29
MANAGE_GUILD_EXPRESSIONS = 1 << 30
USE_APPLICATION_COMMANDS = 1 << 31
REQUEST_TO_SPEAK = 1 << 32
MANAGE_EVENTS = 1 << 33
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
USE_EXTERNAL_STICKERS = 1 << 37
SEND_MESSAGES_IN_THREADS = 1 << 38
USE_EMBEDDED_ACTIVITIES = 1 << 39
MODERATE_MEMBERS = 1 << 40
VIEW_CREATOR_MONETIZATION_ANALYTICS = 1 << 41
USE_SOUNDBOARD = 1 << 42
CREATE_GUILD_EXPRESSIONS = 1 << 43
CREATE_EVENTS = 1 << 44
USE_EXTERNAL_SOUNDS = 1 << 45
SEND_VOICE_MESSAGES = 1 << 46
SEND_POLLS = 1 << 49
USE_EXTERNAL_APPS = 1 << 50

#: name -> bit, in bit order. Built here, right after the bits, so the only upper-case ints
#: in the module namespace so far are the bits themselves.
FLAGS: dict[str, int] = {
    name: value
    for name, value in sorted(
        ((n, v) for n, v in globals().items() if n.isupper() and isinstance(v, int)),
        key=lambda item: item[1],
    )
}

ALL = 0
for _bit in FLAGS.values():
    ALL |= _bit
del _bit

NONE = 0

#: What a new guild's @everyone role holds (roughly Discord's default for a new server).
DEFAULT_EVERYONE = (
    CREATE_INSTANT_INVITE | ADD_REACTIONS | STREAM | VIEW_CHANNEL | SEND_MESSAGES
    | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY | MENTION_EVERYONE
    | USE_EXTERNAL_EMOJIS | CONNECT | SPEAK | USE_VAD | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS | REQUEST_TO_SPEAK | CREATE_PUBLIC_THREADS
    | CREATE_PRIVATE_THREADS | USE_EXTERNAL_STICKERS | SEND_MESSAGES_IN_THREADS
    | USE_EMBEDDED_ACTIVITIES | USE_SOUNDBOARD | USE_EXTERNAL_SOUNDS | SEND_VOICE_MESSAGES
    | SEND_POLLS | USE_EXTERNAL_APPS
)

#: Overwrite target types.
ROLE = 0
MEMBER = 1


def parse(value: str | int | None) -> int:
    """Permission bits from Discord's JSON (a decimal string) or an int; None is 0."""
    if value is None or value == "":
        return 0
    bits = int(value)
    if bits < 0:
        raise ValueError(f"permission bits cannot be negative: {value!r}")
    return bits


def names(bits: int) -> list[str]:
    """The names of the set bits, lowest bit first (unknown bits as ``BIT_<n>``)."""
    out = [name for name, bit in FLAGS.items() if bits & bit]
    unknown = bits & ~ALL
    n = 0
    while unknown:
        if unknown & 1:
            out.append(f"BIT_{n}")
        unknown >>= 1
        n += 1
    return out


def from_names(*flag_names: str) -> int:
    """Bits from names (``from_names("VIEW_CHANNEL", "CONNECT")``); KeyError if unknown."""
    bits = 0
    for name in flag_names:
        bits |= FLAGS[name.upper()]
    return bits


@dataclass(frozen=True, slots=True)
class Overwrite:
    """A channel permission overwrite: ``type`` is ROLE (0) or MEMBER (1)."""

    id: str
    type: int
    allow: int = 0
    deny: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Overwrite:
        kind = data.get("type", ROLE)
        # v10 takes only 0 or 1 (the words "role" and "member" were API v6's and are
        # refused now, as are booleans).
        if isinstance(kind, bool) or kind not in (ROLE, MEMBER):
            raise ValueError(f"overwrite type must be 0 (role) or 1 (member), not {kind!r}")
        return cls(id=str(data["id"]), type=int(kind), allow=parse(data.get("allow")),
                   deny=parse(data.get("deny")))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "allow": str(self.allow),
                "deny": str(self.deny)}


def _as_overwrite(item: Overwrite | Mapping[str, Any]) -> Overwrite:
    return item if isinstance(item, Overwrite) else Overwrite.from_json(item)


def base_permissions(
    guild_owner_id: str | int | None,
    everyone_role_perms: int,
    member_role_perms: Iterable[int],
    user_id: str | int,
) -> int:
    """A member's guild-level permissions: the owner and administrators hold everything,
    everyone else holds @everyone's bits OR'ed with those of each of their roles."""
    if guild_owner_id is not None and str(guild_owner_id) == str(user_id):
        return ALL
    bits = everyone_role_perms
    for role_bits in member_role_perms:
        bits |= role_bits
    if bits & ADMINISTRATOR:
        return ALL
    return bits


def channel_permissions(
    base: int,
    overwrites: Iterable[Overwrite | Mapping[str, Any]],
    member_role_ids: Iterable[str | int],
    user_id: str | int,
    everyone_role_id: str | int,
) -> int:
    """A member's permissions in one channel, from their base permissions and the
    channel's overwrites, in Discord's order: ADMINISTRATOR → all; the @everyone overwrite;
    the member's role overwrites combined (deny first, then allow); the member overwrite.

    ``overwrites`` are ``Overwrite`` objects or Discord's JSON (``{"id", "type", "allow",
    "deny"}``, bits as strings or ints). ``everyone_role_id`` is the guild id.
    Implicit rules (no VIEW_CHANNEL → nothing else) are in ``effective``, not here.
    """
    if base & ADMINISTRATOR:
        return ALL
    everyone_id = str(everyone_role_id)
    member_id = str(user_id)
    roles = {str(r) for r in member_role_ids}
    everyone: Overwrite | None = None
    member: Overwrite | None = None
    role_allow = role_deny = 0
    for item in overwrites:
        ow = _as_overwrite(item)
        if ow.type == MEMBER:
            if ow.id == member_id:
                member = ow
        elif ow.id == everyone_id:
            everyone = ow
        elif ow.id in roles:
            role_allow |= ow.allow
            role_deny |= ow.deny
    bits = base
    if everyone is not None:
        bits = (bits & ~everyone.deny) | everyone.allow
    bits = (bits & ~role_deny) | role_allow
    if member is not None:
        bits = (bits & ~member.deny) | member.allow
    return bits


# Permissions that mean nothing without SEND_MESSAGES / CONNECT (Discord's implicit rules).
_NEEDS_SEND = MENTION_EVERYONE | SEND_TTS_MESSAGES | ATTACH_FILES | EMBED_LINKS
_NEEDS_CONNECT = SPEAK | STREAM | USE_VAD | PRIORITY_SPEAKER | MUTE_MEMBERS | DEAFEN_MEMBERS \
    | MOVE_MEMBERS | USE_SOUNDBOARD | USE_EMBEDDED_ACTIVITIES


def effective(bits: int) -> int:
    """Apply Discord's implicit permissions to channel-level bits: without VIEW_CHANNEL a
    member can do nothing in the channel; without SEND_MESSAGES no mention/TTS/files/embeds;
    without CONNECT no speaking, streaming or moving (administrators keep everything)."""
    if bits & ADMINISTRATOR:
        return ALL
    if not bits & VIEW_CHANNEL:
        return 0
    if not bits & SEND_MESSAGES:
        bits &= ~_NEEDS_SEND
    if not bits & CONNECT:
        bits &= ~_NEEDS_CONNECT
    return bits


def can_view(
    base: int,
    overwrites: Iterable[Overwrite | Mapping[str, Any]],
    member_role_ids: Iterable[str | int],
    user_id: str | int,
    everyone_role_id: str | int,
) -> bool:
    """Whether the member sees the channel (holds VIEW_CHANNEL there)."""
    bits = channel_permissions(base, overwrites, member_role_ids, user_id, everyone_role_id)
    return bool(bits & VIEW_CHANNEL)
