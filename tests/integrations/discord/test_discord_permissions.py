"""Discord's permission algorithm, as pure functions."""

from __future__ import annotations

from coachgate.integrations.discord import permissions as P

GUILD = "100"
ROLE_A, ROLE_B = "201", "202"
USER = "300"


def test_bits_and_names() -> None:
    assert P.VIEW_CHANNEL == 1024
    assert P.MANAGE_ROLES == 1 << 28
    assert P.names(P.VIEW_CHANNEL | P.CONNECT) == ["VIEW_CHANNEL", "CONNECT"]
    assert P.names(1 << 60) == ["BIT_60"]
    assert P.from_names("view_channel", "CONNECT") == P.VIEW_CHANNEL | P.CONNECT
    assert P.parse("1024") == P.parse(1024) == P.VIEW_CHANNEL
    assert P.parse(None) == 0
    assert P.ALL & P.ADMINISTRATOR and P.ALL & P.USE_EXTERNAL_APPS


def test_base_permissions_owner_and_administrator_hold_everything() -> None:
    assert P.base_permissions(USER, 0, [], USER) == P.ALL
    assert P.base_permissions("1", P.VIEW_CHANNEL, [P.ADMINISTRATOR], USER) == P.ALL
    assert P.base_permissions("1", P.VIEW_CHANNEL, [P.CONNECT, P.SPEAK], USER) == (
        P.VIEW_CHANNEL | P.CONNECT | P.SPEAK)


def test_channel_overwrites_apply_in_discord_order() -> None:
    base = P.VIEW_CHANNEL | P.CONNECT
    everyone_deny = {"id": GUILD, "type": 0, "allow": "0", "deny": str(P.VIEW_CHANNEL)}
    role_allow = {"id": ROLE_A, "type": 0, "allow": str(P.VIEW_CHANNEL), "deny": "0"}
    role_deny = {"id": ROLE_B, "type": 0, "allow": "0", "deny": str(P.VIEW_CHANNEL)}
    member_deny = P.Overwrite(USER, P.MEMBER, allow=0, deny=P.VIEW_CHANNEL)

    def sees(overwrites: list, roles: list[str]) -> bool:
        return P.can_view(base, overwrites, roles, USER, GUILD)

    assert not sees([everyone_deny], [])
    assert sees([everyone_deny, role_allow], [ROLE_A])
    # Role overwrites are combined, allow wins over deny among roles.
    assert sees([everyone_deny, role_allow, role_deny], [ROLE_A, ROLE_B])
    assert not sees([role_deny], [ROLE_B])
    # The member overwrite comes last.
    assert not sees([everyone_deny, role_allow, member_deny.to_json()], [ROLE_A])
    # A role overwrite for a role the member lacks does nothing.
    assert not sees([everyone_deny, role_allow], [ROLE_B])
    # A member overwrite for someone else does nothing.
    assert not sees([everyone_deny, {"id": "999", "type": 1, "allow": "1024", "deny": "0"}],
                    [])
    # Administrators ignore overwrites.
    assert P.channel_permissions(P.ALL, [everyone_deny], [], USER, GUILD) == P.ALL


def test_implicit_permissions() -> None:
    assert P.effective(P.CONNECT | P.SPEAK) == 0  # nothing without VIEW_CHANNEL
    assert P.effective(P.VIEW_CHANNEL | P.SPEAK) == P.VIEW_CHANNEL  # no SPEAK without CONNECT
    assert P.effective(P.VIEW_CHANNEL | P.ATTACH_FILES) == P.VIEW_CHANNEL
    assert P.effective(P.ADMINISTRATOR) == P.ALL
