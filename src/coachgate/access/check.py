"""`coachgate check`: does the bot have what the chosen provisioning mode needs?"""

from __future__ import annotations

from dataclasses import dataclass, field

from coachgate.accounts import discord as linked
from coachgate.catalog.models import Offer, OfferStatus
from coachgate.catalog.rules import parse_access_policy
from coachgate.integrations.discord import permissions as perms
from coachgate.integrations.discord.client import DiscordError
from coachgate.kit import clock
from coachgate.kit.errors import InvalidInput
from coachgate.scheduling.lifecycle import SessionStatus
from coachgate.scheduling.models import Session

from .services import GUILD_CHANNEL_LIMIT, discord_client, record_guild_channels

_COMMON = (perms.VIEW_CHANNEL | perms.MANAGE_CHANNELS | perms.CONNECT | perms.SPEAK
           | perms.CREATE_INSTANT_INVITE)
# Overwrites are edited with MANAGE_ROLES; roles are created and given with it too.
REQUIRED: dict[str, int] = {
    "member_overwrites": _COMMON | perms.MANAGE_ROLES,
    "session_role": _COMMON | perms.MANAGE_ROLES,
    "offer_role": _COMMON | perms.MANAGE_ROLES,
}


# What to do about the answers an operator is most likely to meet here.
_HINTS: dict[tuple[int | None, int | None], str] = {
    (401, 0): " (the bot token is wrong or was reset)",
    (404, 10004): " (the guild id is wrong, or the bot is not in that guild)",
}


@dataclass
class CheckReport:
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def add(self, ok: bool, text: str) -> None:
        self.ok = self.ok and ok
        self.lines.append(f"[{'ok' if ok else 'FAIL'}] {text}")

    def render(self) -> str:
        return "\n".join([*self.lines, "all good" if self.ok else "problems found"])


def modes_in_use() -> list[str]:
    """Discord modes of published offers and of the scheduled sessions booked under them
    (a session keeps the policy it was booked under). A policy that does not parse is left
    out here: the access worker records it against its session."""
    policies = [*Offer.objects.filter(status=OfferStatus.PUBLISHED, delivery="discord_voice")
                .values_list("access_policy", flat=True),
                *Session.objects.filter(status=SessionStatus.SCHEDULED,
                                        offer__delivery="discord_voice")
                .values_list("access_policy", flat=True).distinct()]
    modes: set[str] = set()
    for p in policies:
        try:
            modes.add(parse_access_policy(p).discord_mode)
        except InvalidInput:
            continue
    return sorted(modes or {"member_overwrites"})


def check_guild(mode: str | None = None) -> CheckReport:
    report = CheckReport()
    cfg = linked.guild_settings()
    if cfg is None:
        report.add(False, "Discord is not configured: set the guild id and bot token "
                          "(admin › Discord guild config, or COACHGATE_DISCORD_* variables)")
        return report
    client = discord_client(cfg)
    try:
        bot = client.get_current_user()
        report.add(True, f"bot token works: {bot.get('username')} ({bot['id']})")
        guild = client.get_guild(cfg.guild_id)
        report.add(True, f"guild {guild.get('name')} ({cfg.guild_id}) reachable")
        roles = {str(r["id"]): r for r in client.list_guild_roles(cfg.guild_id)}
        member = client.get_guild_member(cfg.guild_id, str(bot["id"]))
        channels = client.list_guild_channels(cfg.guild_id)
    except DiscordError as exc:
        # str(exc) reads "GET /users/@me: 401 (code 0): ..." or "...: no answer: ..." when
        # Discord could not be reached (status None).
        report.add(False, f"Discord: {exc}{_HINTS.get((exc.status, exc.code), '')}")
        return report
    everyone = int(roles.get(cfg.guild_id, {}).get("permissions", "0"))
    member_role_perms = [int(roles[r]["permissions"]) for r in member.get("roles", [])
                         if r in roles]
    have = perms.base_permissions(str(guild.get("owner_id", "")), everyone, member_role_perms,
                                  str(bot["id"]))
    for m in ([mode] if mode else modes_in_use()):
        missing = REQUIRED[m] & ~have if not have & perms.ADMINISTRATOR else 0
        report.add(not missing, f"mode {m}: " + (
            "bot has every permission it needs" if not missing
            else "bot lacks " + ", ".join(perms.names(missing))))
    ids = {str(c["id"]) for c in channels}
    if cfg.category_id:
        report.add(cfg.category_id in ids, f"platform category {cfg.category_id} "
                   + ("exists" if cfg.category_id in ids else "not found in the guild"))
    ours = record_guild_channels(cfg.guild_id, channels, clock.now())
    report.add(len(channels) < GUILD_CHANNEL_LIMIT,
               f"guild holds {len(channels)} of {GUILD_CHANNEL_LIMIT} channels "
               f"({ours} are coachgate's session channels and categories)")
    return report
