"""Channel access tokens at rest: encrypted in PostgreSQL and in the Redis route cache.

`cryptography`'s Fernet is authenticated encryption (AES-128-CBC with HMAC-SHA256 over the IV and
ciphertext): a stored token that was altered, truncated or written under another key is refused,
never decrypted into garbage. `MultiFernet` takes several keys: the first encrypts, every one of
them decrypts, which is what rotating a key needs (put the new key first, re-encrypt, drop the old).

The stored form is `enc1:` followed by the Fernet token, so that a token stored in plain text before
encryption existed can be told apart: it is still read (with one warning per process, naming no
token) until `mcagent reencrypt-tokens` encrypts it. An empty token (a web chat channel has none) is
stored empty: there is nothing to hide, and nothing to decrypt.

Only the adapters that write a token outside process memory use this; the domain `Channel` holds
the clear token, which the senders need.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = structlog.get_logger()

#: Marks a stored value as encrypted, and with which scheme: another scheme would get another prefix.
PREFIX = "enc1:"


class TokenUndecryptable(Exception):
    """A stored token that none of the configured keys decrypts (or that was altered)."""


def generate_key() -> str:
    """A new random key, in the form TOKEN_ENCRYPTION_KEYS takes."""
    return Fernet.generate_key().decode("ascii")


def check_key(key: str) -> None:
    """Raise ValueError unless `key` is a Fernet key (32 bytes, url-safe base64). The message holds no key."""
    try:
        Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ValueError("not a Fernet key (32 random bytes, url-safe base64-encoded: 44 characters)") from None


class FernetTokenCipher:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        for key in keys:
            check_key(key)
        self._first = Fernet(keys[0].encode("ascii"))
        self._all = MultiFernet([Fernet(key.encode("ascii")) for key in keys])
        self._plaintext_seen = threading.Event()

    def encrypt(self, token: str) -> str:
        """The stored form of `token`."""
        if not token:
            return ""
        return PREFIX + self._first.encrypt(token.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The token a stored value holds. Raises TokenUndecryptable when no key opens it."""
        if not stored:
            return ""
        if not is_encrypted(stored):
            self._warn_plaintext_once()
            return stored
        try:
            return self._all.decrypt(_fernet_token(stored)).decode("utf-8")
        except InvalidToken:
            raise TokenUndecryptable(
                "a stored access token cannot be decrypted with any key of TOKEN_ENCRYPTION_KEYS "
                "(written under a key that is no longer listed, or altered)"
            ) from None

    def reencrypt(self, stored: str) -> str | None:
        """`stored` encrypted under the first key, or None when it is that already (or empty).

        Raises TokenUndecryptable when no key opens it.
        """
        if not stored:
            return None
        if not is_encrypted(stored):
            return self.encrypt(stored)
        fernet_token = _fernet_token(stored)
        try:
            self._first.decrypt(fernet_token)
            return None
        except InvalidToken:
            pass
        try:
            return PREFIX + self._all.rotate(fernet_token).decode("ascii")
        except InvalidToken:
            raise TokenUndecryptable(
                "a stored access token cannot be decrypted with any key of TOKEN_ENCRYPTION_KEYS"
            ) from None

    def _warn_plaintext_once(self) -> None:
        if not self._plaintext_seen.is_set():
            self._plaintext_seen.set()
            log.warning(
                "access_token_stored_in_plain_text",
                hint="written before tokens were encrypted; run `mcagent reencrypt-tokens` to encrypt them",
            )


def is_encrypted(stored: str) -> bool:
    return stored.startswith(PREFIX)


def _fernet_token(stored: str) -> bytes:
    try:
        return stored.removeprefix(PREFIX).encode("ascii")
    except UnicodeEncodeError:
        # Fernet tokens are ASCII; anything else was altered, and is refused like any other alteration.
        return b"-"
