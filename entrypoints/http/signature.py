"""Meta's `X-Hub-Signature-256` webhook signature: HMAC-SHA256 of the raw request body, keyed with the app secret."""

from __future__ import annotations

import hashlib
import hmac

_PREFIX = "sha256="
_HEX_DIGITS = frozenset("0123456789abcdef")


def sign(raw_body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header value Meta would send for `raw_body`."""
    digest = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return f"{_PREFIX}{digest}"


def verify_signature(raw_body: bytes, header_value: str | None, app_secret: str) -> bool:
    """True when `header_value` is the signature of exactly these bytes.

    The body must be the bytes as received: Meta signs its escaped-unicode serialisation, so
    hashing re-serialised JSON fails for any non-ASCII text.
    """
    if not header_value:
        return False
    scheme, separator, received = header_value.strip().partition("=")
    if not separator or scheme.lower() != _PREFIX[:-1]:
        return False
    received = received.lower()
    if len(received) != hashlib.sha256().digest_size * 2 or not set(received) <= _HEX_DIGITS:
        return False
    expected = sign(raw_body, app_secret)[len(_PREFIX) :]
    return hmac.compare_digest(expected, received)
