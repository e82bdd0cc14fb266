"""Web chat visitor tokens: the session signed with a key derived from TOKEN_ENCRYPTION_KEYS.

A token is `itsdangerous`'s URL-safe signed form (HMAC-SHA1 over the payload — Flask's own session
signing) of `[widget_id, visitor_id, expires_at]`: a browser can read it but not change it or make one.
The signing keys are derived from the token encryption keys with HKDF under a purpose of their own, so
the secret that encrypts access tokens never signs anything a browser holds, and rotating those keys
rotates these: every listed key verifies, the first signs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadData, URLSafeSerializer

from domain import limits
from domain.webchat import VisitorSession

_PURPOSE = b"mcagent/webchat-visitor-token/v1"
#: Longer than any token we issue (about 110 characters): anything longer is not ours, unread.
_MAX_TOKEN = 512


def _derived(key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(key.encode("ascii"))


class SignedVisitorTokens:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        # itsdangerous signs with the last key and verifies with all of them.
        self._serializer = URLSafeSerializer([_derived(key) for key in reversed(keys)], salt="webchat-visitor")

    def issue(self, session: VisitorSession) -> str:
        return str(self._serializer.dumps([session.widget_id, session.visitor_id, int(session.expires_at.timestamp())]))

    def read(self, token: str) -> VisitorSession | None:
        if not token or len(token) > _MAX_TOKEN or not token.isascii():
            return None
        try:
            payload = self._serializer.loads(token)
        except BadData:
            return None
        match payload:
            case [str() as widget_id, str() as visitor_id, int() as expires] if (
                len(widget_id) <= limits.CHANNEL_ID and len(visitor_id) <= limits.CUSTOMER_ID and expires > 0
            ):
                return VisitorSession(
                    widget_id=widget_id,
                    visitor_id=visitor_id,
                    expires_at=datetime.fromtimestamp(expires, UTC),
                )
        return None
