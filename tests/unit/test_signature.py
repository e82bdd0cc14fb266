"""Meta's X-Hub-Signature-256: HMAC-SHA256 over the raw request bytes."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from entrypoints.http.signature import sign, verify_signature

SECRET = "app-secret-for-tests"
RAW_WITH_ESCAPES = (Path(__file__).parent / "fixtures" / "whatsapp" / "text_non_ascii.json").read_bytes()


def test_fixture_keeps_non_ascii_text_as_unicode_escapes() -> None:
    assert b"\\u00e4\\u00f6\\u00e5" in RAW_WITH_ESCAPES
    assert RAW_WITH_ESCAPES.isascii()


def test_sign_gives_the_header_meta_sends() -> None:
    expected = hmac.new(SECRET.encode(), RAW_WITH_ESCAPES, hashlib.sha256).hexdigest()

    assert sign(RAW_WITH_ESCAPES, SECRET) == f"sha256={expected}"


def test_signature_over_the_raw_bytes_with_unicode_escapes_is_accepted() -> None:
    assert verify_signature(RAW_WITH_ESCAPES, sign(RAW_WITH_ESCAPES, SECRET), SECRET)


def test_signature_does_not_match_the_re_serialised_body() -> None:
    reserialised = json.dumps(json.loads(RAW_WITH_ESCAPES), ensure_ascii=False).encode("utf-8")

    assert not verify_signature(reserialised, sign(RAW_WITH_ESCAPES, SECRET), SECRET)


def test_upper_case_hex_is_accepted() -> None:
    header = sign(RAW_WITH_ESCAPES, SECRET)

    assert verify_signature(RAW_WITH_ESCAPES, "sha256=" + header.removeprefix("sha256=").upper(), SECRET)


def test_signature_made_with_another_secret_is_rejected() -> None:
    assert not verify_signature(RAW_WITH_ESCAPES, sign(RAW_WITH_ESCAPES, "another-secret"), SECRET)


def test_tampered_body_is_rejected() -> None:
    header = sign(RAW_WITH_ESCAPES, SECRET)

    assert not verify_signature(RAW_WITH_ESCAPES.replace(b"Hej", b"Hey"), header, SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha256",
        "sha1=" + "0" * 40,
        "md5=" + "0" * 64,
        "sha256=" + "z" * 64,
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 65,
        "0" * 64,
    ],
)
def test_missing_or_garbled_header_is_rejected(header: str | None) -> None:
    assert not verify_signature(RAW_WITH_ESCAPES, header, SECRET)
