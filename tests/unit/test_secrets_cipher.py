"""The token cipher: what PostgreSQL and the Redis route cache hold instead of a channel's access token."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from adapters.crypto import PREFIX, FernetTokenCipher, TokenUndecryptable, generate_key
from tests.support.secrets import OTHER_TOKEN_KEY, TEST_TOKEN_KEY

TOKEN = "EAAGm0PX4ZCpsBAKZCZA1Oq2H3mHZB9t5zDz4hjuKZBw8gPZAqYxRZAtB1sXfW4ZCZBCZCJiLSZCgK"
A, B = TEST_TOKEN_KEY, OTHER_TOKEN_KEY


def test_a_token_is_stored_as_recognisable_ciphertext_that_does_not_contain_it() -> None:
    stored = FernetTokenCipher([A]).encrypt(TOKEN)

    assert stored.startswith(PREFIX)
    assert TOKEN not in stored
    assert TOKEN[:-4] not in stored and TOKEN[-12:] not in stored


def test_a_stored_token_decrypts_to_the_token() -> None:
    cipher = FernetTokenCipher([A])

    assert cipher.decrypt(cipher.encrypt(TOKEN)) == TOKEN


def test_the_same_token_is_stored_differently_each_time() -> None:
    cipher = FernetTokenCipher([A])

    assert cipher.encrypt(TOKEN) != cipher.encrypt(TOKEN)


def test_a_token_outside_ascii_round_trips() -> None:
    cipher = FernetTokenCipher([A])

    assert cipher.decrypt(cipher.encrypt("tøken-ü-€")) == "tøken-ü-€"


def test_no_token_is_stored_as_no_token() -> None:
    cipher = FernetTokenCipher([A])

    assert cipher.encrypt("") == ""
    assert cipher.decrypt("") == ""


def test_every_listed_key_decrypts_and_the_first_encrypts() -> None:
    under_a = FernetTokenCipher([A]).encrypt(TOKEN)
    rotating = FernetTokenCipher([B, A])

    assert rotating.decrypt(under_a) == TOKEN
    assert FernetTokenCipher([B]).decrypt(rotating.encrypt(TOKEN)) == TOKEN


def test_a_token_under_a_key_no_longer_listed_is_a_clear_error_not_garbage() -> None:
    under_a = FernetTokenCipher([A]).encrypt(TOKEN)

    with pytest.raises(TokenUndecryptable) as refused:
        FernetTokenCipher([B]).decrypt(under_a)

    assert "TOKEN_ENCRYPTION_KEYS" in str(refused.value)
    assert under_a not in str(refused.value)


@pytest.mark.parametrize(
    "alter",
    [
        lambda stored: stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:],
        lambda stored: stored[:40],
        lambda stored: stored[:10] + "é" + stored[11:],
        lambda stored: PREFIX,
    ],
    ids=["one-character-changed", "truncated", "not-ascii", "prefix-only"],
)
def test_an_altered_token_is_refused(alter: object) -> None:
    cipher = FernetTokenCipher([A])
    stored = cipher.encrypt(TOKEN)

    with pytest.raises(TokenUndecryptable):
        cipher.decrypt(alter(stored))  # type: ignore[operator]


def test_a_token_stored_in_plain_text_before_encryption_is_still_read_with_one_warning_without_it() -> None:
    cipher = FernetTokenCipher([A])

    with capture_logs() as logs:
        first = cipher.decrypt(TOKEN)
        second = cipher.decrypt("EAAG-another-legacy-token")

    assert (first, second) == (TOKEN, "EAAG-another-legacy-token")
    assert [entry["event"] for entry in logs] == ["access_token_stored_in_plain_text"]
    assert "reencrypt-tokens" in logs[0]["hint"]
    assert TOKEN not in repr(logs)


def test_reencrypting_a_token_under_an_older_key_puts_it_under_the_first() -> None:
    under_a = FernetTokenCipher([A]).encrypt(TOKEN)

    again = FernetTokenCipher([B, A]).reencrypt(under_a)

    assert again is not None and again.startswith(PREFIX)
    assert FernetTokenCipher([B]).decrypt(again) == TOKEN


def test_reencrypting_a_token_under_the_first_key_changes_nothing() -> None:
    cipher = FernetTokenCipher([B, A])

    assert cipher.reencrypt(cipher.encrypt(TOKEN)) is None
    assert cipher.reencrypt("") is None


def test_reencrypting_a_plain_text_token_encrypts_it() -> None:
    again = FernetTokenCipher([B, A]).reencrypt(TOKEN)

    assert again is not None and again.startswith(PREFIX)
    assert FernetTokenCipher([B]).decrypt(again) == TOKEN


def test_reencrypting_a_token_no_key_opens_is_a_clear_error() -> None:
    under_a = FernetTokenCipher([A]).encrypt(TOKEN)

    with pytest.raises(TokenUndecryptable):
        FernetTokenCipher([B]).reencrypt(under_a)


@pytest.mark.parametrize("bad", ["", "short", "x" * 44, A[:-2], "%" * 44, "é" * 44])
def test_a_cipher_is_never_built_on_a_bad_key_and_the_error_does_not_show_it(bad: str) -> None:
    with pytest.raises(ValueError) as refused:
        FernetTokenCipher([A, bad])

    assert "Fernet key" in str(refused.value)
    assert not bad or bad not in str(refused.value)


def test_a_cipher_needs_a_key() -> None:
    with pytest.raises(ValueError):
        FernetTokenCipher([])


def test_generated_keys_are_usable_and_new_each_time() -> None:
    first, second = generate_key(), generate_key()

    assert first != second
    assert FernetTokenCipher([second]).decrypt(FernetTokenCipher([second, first]).encrypt(TOKEN)) == TOKEN
