"""Access tests use the root conftest's Discord fixtures (shared with tests/e2e)."""

from tests.conftest import DiscordEnv

__all__ = ["DiscordEnv"]
