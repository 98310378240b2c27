"""Secrets at rest: bot tokens and linked-account tokens are stored encrypted.

Fernet (AES-128-CBC + HMAC-SHA256, from the `cryptography` package). The key comes from
COACHGATE["ENCRYPTION_KEY"] when an operator sets one, otherwise it is derived from
SECRET_KEY with HKDF so the embedded default needs no extra setup. Rotating: set the new
key first in COACHGATE_ENCRYPTION_KEY and the old one in COACHGATE_ENCRYPTION_KEY_OLD.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from coachgate.kit.config import conf


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


def _derive(secret_key: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"coachgate-secrets",
               info=b"fernet").derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


@lru_cache(maxsize=4)
def _fernet(primary: str, old: str, secret_key: str) -> MultiFernet:
    keys = [primary.encode() if primary else _derive(secret_key)]
    if old:
        keys.append(old.encode())
    return MultiFernet([Fernet(k) for k in keys])


def _current() -> MultiFernet:
    cfg = conf()
    return _fernet(cfg.ENCRYPTION_KEY, cfg.ENCRYPTION_KEY_OLD, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage. Empty stays empty (nothing to hide)."""
    if not plaintext:
        return ""
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    if not ciphertext:
        return ""
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "stored secret cannot be decrypted with the configured key") from None
