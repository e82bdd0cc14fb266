"""Re-encrypting every channel access token under the first key of TOKEN_ENCRYPTION_KEYS.

What `mcagent reencrypt-tokens` runs after a key is put first: tokens stored under an older key,
and tokens stored in plain text before encryption existed, are written again under the first key.
Batches of `batch_size` channels in `phone_number_id` order, one transaction each, so a large table
holds no long transaction and an interrupted run loses nothing: run it again. A token already under
the first key is left as it is, so a second run writes nothing.

Each update is conditional on the value it was computed from: a token rotated by its tenant while
the command runs is not overwritten with the old one (and was encrypted by the service that wrote
it); it is counted, and a second run looks at it again.
"""

from __future__ import annotations

from attrs import define, field
from psycopg_pool import ConnectionPool

from adapters.crypto import FernetTokenCipher, TokenUndecryptable, is_encrypted
from adapters.postgres._sql import checked_out


@define
class ReencryptionCounts:
    #: Stored under another listed key, now under the first.
    reencrypted: int = 0
    #: Stored in plain text, now encrypted.
    encrypted: int = 0
    #: Under the first key already, or with no token (web chat): left as they were.
    current: int = 0
    #: Changed by somebody else between read and write: left to a second run.
    changed_meanwhile: int = 0
    #: Channels whose token no listed key decrypts (or that was altered): left as they were.
    unreadable: list[str] = field(factory=list)


class PostgresChannelTokens:
    def __init__(self, pool: ConnectionPool, *, cipher: FernetTokenCipher) -> None:
        self._pool = pool
        self._cipher = cipher

    def reencrypt_all(self, *, batch_size: int = 500) -> ReencryptionCounts:
        counts = ReencryptionCounts()
        after = ""
        while True:
            last = self._reencrypt_batch(after, batch_size, counts)
            if last is None:
                return counts
            after = last

    def _reencrypt_batch(self, after: str, batch_size: int, counts: ReencryptionCounts) -> str | None:
        """Re-encrypt the channels after `after`; the last one looked at, None when there were none."""
        with checked_out(self._pool) as conn:
            rows = conn.execute(
                "SELECT phone_number_id, access_token FROM phone_numbers"
                " WHERE phone_number_id > %s ORDER BY phone_number_id LIMIT %s",
                (after, batch_size),
            ).fetchall()
            if not rows:
                conn.rollback()
                return None
            ids: list[str] = []
            olds: list[str] = []
            news: list[str] = []
            for phone_number_id, stored in rows:
                try:
                    new = self._cipher.reencrypt(stored)
                except TokenUndecryptable:
                    counts.unreadable.append(phone_number_id)
                    continue
                if new is None:
                    counts.current += 1
                    continue
                ids.append(phone_number_id)
                olds.append(stored)
                news.append(new)
            updated = {
                row[0]
                for row in conn.execute(
                    """
                    UPDATE phone_numbers p SET access_token = v.new
                    FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(id, old, new)
                    WHERE p.phone_number_id = v.id AND p.access_token = v.old
                    RETURNING p.phone_number_id
                    """,
                    (ids, olds, news),
                ).fetchall()
            }
            conn.commit()
        for phone_number_id, old in zip(ids, olds, strict=True):
            if phone_number_id not in updated:
                counts.changed_meanwhile += 1
            elif is_encrypted(old):
                counts.reencrypted += 1
            else:
                counts.encrypted += 1
        last: str = rows[-1][0]
        return last
