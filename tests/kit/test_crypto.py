"""kit.crypto: secrets at rest, and rotating their key (the new key in
COACHGATE_ENCRYPTION_KEY, the old one in COACHGATE_ENCRYPTION_KEY_OLD)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from coachgate.kit import crypto

OLD, NEW, OTHER = Fernet.generate_key().decode(), Fernet.generate_key().decode(), \
    Fernet.generate_key().decode()


@pytest.fixture
def keys(settings: Any) -> Any:
    """keys(primary, old=""): configure the keys as an operator would (both are typed
    settings, kit.config: COACHGATE_ENCRYPTION_KEY and COACHGATE_ENCRYPTION_KEY_OLD)."""

    def configure(primary: str, old: str = "") -> None:
        settings.COACHGATE = {**settings.COACHGATE, "ENCRYPTION_KEY": primary,
                              "ENCRYPTION_KEY_OLD": old}

    return configure


def test_a_secret_round_trips_and_is_not_stored_in_clear(keys):
    keys(NEW)
    stored = crypto.encrypt("bot-token-123")
    assert "bot-token-123" not in stored
    assert crypto.decrypt(stored) == "bot-token-123"
    assert crypto.encrypt("x") != crypto.encrypt("x")  # a fresh IV each time


def test_empty_stays_empty(keys):
    keys(NEW)
    assert crypto.encrypt("") == "" and crypto.decrypt("") == ""


def test_rotation_reads_old_values_and_writes_new_ones_under_the_new_key(keys):
    keys(OLD)
    before = crypto.encrypt("refresh-token")
    keys(NEW, old=OLD)  # rotate: the new key first, the old one kept readable
    assert crypto.decrypt(before) == "refresh-token"
    after = crypto.encrypt("refresh-token")
    # MultiFernet's order: the first key encrypts, every key decrypts.
    assert Fernet(NEW.encode()).decrypt(after.encode()) == b"refresh-token"
    with pytest.raises(InvalidToken):
        Fernet(OLD.encode()).decrypt(after.encode())
    # Once every stored value has been written again, the old key can go.
    keys(NEW)
    assert crypto.decrypt(after) == "refresh-token"


def test_the_old_key_alone_does_not_encrypt(keys):
    keys(NEW, old=OLD)
    stored = crypto.encrypt("s")
    with pytest.raises(InvalidToken):
        Fernet(OLD.encode()).decrypt(stored.encode())


def test_a_value_under_a_removed_key_fails_clearly(keys):
    keys(OLD)
    stored = crypto.encrypt("refresh-token")
    keys(NEW)  # the old key dropped before the value was written again
    with pytest.raises(crypto.SecretUnreadable, match="cannot be decrypted with the "
                       "configured key") as caught:
        crypto.decrypt(stored)
    assert caught.value.__cause__ is None  # no cryptography traceback: the message says it
    keys(NEW, old=OTHER)  # an unrelated old key does not help either
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(stored)


def test_a_corrupted_value_fails_clearly(keys):
    keys(NEW)
    stored = crypto.encrypt("s")
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB"))
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt("not a fernet token")


def test_without_a_key_it_derives_one_from_secret_key(keys, settings):
    keys("")
    settings.SECRET_KEY = "a-secret-key-long-enough-for-the-test-" + "x" * 20
    stored = crypto.encrypt("s")
    assert crypto.decrypt(stored) == "s"
    assert Fernet(crypto._derive(settings.SECRET_KEY)).decrypt(stored.encode()) == b"s"
    settings.SECRET_KEY = "another-secret-key-long-enough-for-it-" + "y" * 20
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(stored)


def test_a_malformed_key_is_refused_at_first_use(keys):
    keys("not-a-fernet-key")
    with pytest.raises(ValueError, match="32 url-safe base64-encoded bytes"):
        crypto.encrypt("s")
