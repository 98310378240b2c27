"""Access tests use the root conftest's Discord fixtures (shared with tests/e2e); DiscordEnv
is tests.clients', still importable from here for branches merged later."""

from tests.clients import DiscordEnv

__all__ = ["DiscordEnv"]
