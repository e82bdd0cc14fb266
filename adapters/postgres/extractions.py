"""Lead extractions in PostgreSQL: the conversations' extraction state (columns of `conversations`) and the
extractions kept as history (`extractions`).

A demo time is stored as the instant (timestamptz) and the UTC offset the customer gave, in minutes, and
read back in that offset: "15:00 in Paris" is shown as 15:00+01:00, not as 14:00 UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, LiteralString

from attrs import evolve
from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.postgres._sql import PostgresRepository
from adapters.postgres.rows import entity
from application.ports.lead_storage import ExtractionPage, ExtractionQuery
from domain.extraction import MAX_ATTEMPTS, Extraction, LeadActivity, LeadFields, TranscriptLine
from domain.messages import DELETED_BY_CUSTOMER

EXTRACTION_COLUMNS = (
    "extraction_id, user_id, conversation_id, phone_number_id, through_sequence_no, name, email, company, intent, "
    "urgency, budget, fit, engagement, demo_datetime, demo_utc_offset_min, smart_notification, missing, "
    "credits_charged, response_id, input_tokens, output_tokens, created_at"
)

_ACTIVITY_COLUMNS = (
    "conversation_id, user_id, phone_number_id, agent_id, last_message_at, last_sequence_no, "
    "extracted_through_sequence_no AS extracted_through, extraction_claimed_until AS claimed_until, "
    "extraction_attempts AS attempts, extraction_failure AS last_failure"
)

# The conditions are `LeadActivity.is_due`, written so that conversations_extraction_due_idx serves them:
# its predicate (messages past the last extraction) and its key (the last message's time, oldest first).
# SKIP LOCKED: a conversation another sweeper is claiming is left to it rather than waited for, and one it
# claimed meanwhile is re-checked against the conditions once its lock is let go (its claim excludes it).
# NO KEY UPDATE: the workers' FOR KEY SHARE on the conversation does not wait for the sweep.
_CLAIM_DUE: LiteralString = """
WITH due AS (
    SELECT conversation_id FROM conversations
    WHERE last_sequence_no > extracted_through_sequence_no
      AND last_message_at <= %(quiet_before)s
      AND (extraction_claimed_until IS NULL OR extraction_claimed_until <= %(now)s)
      AND extraction_attempts < %(max_attempts)s
    ORDER BY last_message_at, conversation_id
    LIMIT %(limit)s
    FOR NO KEY UPDATE SKIP LOCKED
), claimed AS (
    UPDATE conversations c SET extraction_claimed_until = %(claim_until)s
    FROM due WHERE c.conversation_id = due.conversation_id
    RETURNING c.conversation_id, c.last_message_at
)
SELECT conversation_id FROM claimed ORDER BY last_message_at, conversation_id
"""

_ACTIVITY: LiteralString = f"SELECT {_ACTIVITY_COLUMNS} FROM conversations WHERE conversation_id = %s FOR NO KEY UPDATE"

_SAVE_ACTIVITY: LiteralString = """
UPDATE conversations
SET extracted_through_sequence_no = %(extracted_through)s, extraction_claimed_until = %(claimed_until)s,
    extraction_attempts = %(attempts)s, extraction_failure = %(last_failure)s
WHERE conversation_id = %(conversation_id)s
"""

# Walks messages_sequence_uniq (conversation_id, sequence_no). An unsent message keeps its text and is
# part of the conversation as the business saw it; the customer's unsent (deleted) ones are not.
_TRANSCRIPT: LiteralString = """
SELECT sequence_no, created_at AS at, sender, text FROM messages
WHERE conversation_id = %(conversation_id)s AND sequence_no <= %(through)s
  AND text IS NOT NULL AND text <> '' AND failure_reason IS DISTINCT FROM %(deleted)s
ORDER BY sequence_no
"""

_ADD: LiteralString = f"""
INSERT INTO extractions (
    user_id, conversation_id, phone_number_id, through_sequence_no, name, email, company, intent, urgency, budget,
    fit, engagement, demo_datetime, demo_utc_offset_min, smart_notification, missing, credits_charged, response_id,
    input_tokens, output_tokens, created_at)
VALUES (
    %(user_id)s, %(conversation_id)s, %(phone_number_id)s, %(through_sequence_no)s, %(name)s, %(email)s,
    %(company)s, %(intent)s, %(urgency)s, %(budget)s, %(fit)s, %(engagement)s, %(demo_datetime)s,
    %(demo_utc_offset_min)s, %(smart_notification)s, %(missing)s, %(credits_charged)s, %(response_id)s,
    %(input_tokens)s, %(output_tokens)s, %(created_at)s)
ON CONFLICT (conversation_id, through_sequence_no) DO NOTHING
RETURNING {EXTRACTION_COLUMNS}
"""

_LATEST: LiteralString = f"""
SELECT {EXTRACTION_COLUMNS} FROM extractions WHERE conversation_id = %s ORDER BY extraction_id DESC LIMIT 1
"""

_HISTORY: LiteralString = f"""
SELECT {EXTRACTION_COLUMNS} FROM extractions
WHERE user_id = %(user_id)s AND conversation_id = %(conversation_id)s
  AND (%(cursor)s::bigint IS NULL OR extraction_id < %(cursor)s)
ORDER BY extraction_id DESC LIMIT %(limit)s
"""

# The latest extraction of each conversation is the one no later extraction of the same conversation
# follows. Asked that way (an anti-join) rather than with DISTINCT ON or a lateral join per conversation,
# the listing walks extractions_user_idx newest first and probes extractions_conversation_idx once per
# row it meets, stopping as soon as the page is full: a page costs what it shows (plus the rows the
# filters turn down), not a pass over every conversation the user ever had.
_LATEST_OF_EACH: LiteralString = """
NOT EXISTS (
    SELECT 1 FROM extractions later
    WHERE later.conversation_id = e.conversation_id AND later.extraction_id > e.extraction_id)
"""

_SCORE_MINIMUMS: Mapping[str, LiteralString] = {
    "min_urgency": "e.urgency >= %(min_urgency)s",
    "min_budget": "e.budget >= %(min_budget)s",
    "min_fit": "e.fit >= %(min_fit)s",
    "min_engagement": "e.engagement >= %(min_engagement)s",
}


class PostgresExtractionsRepository(PostgresRepository):
    def claim_due(self, quiet_before: datetime, now: datetime, claim_until: datetime, limit: int) -> list[int]:
        rows = self._cursor().execute(
            _CLAIM_DUE,
            {
                "quiet_before": quiet_before,
                "now": now,
                "claim_until": claim_until,
                "max_attempts": MAX_ATTEMPTS,
                "limit": limit,
            },
        )
        return [row["conversation_id"] for row in rows]

    def activity(self, conversation_id: int) -> LeadActivity | None:
        row = self._cursor().execute(_ACTIVITY, (conversation_id,)).fetchone()
        return None if row is None else entity(row, LeadActivity)

    def save_activity(self, activity: LeadActivity) -> None:
        self._cursor().execute(
            _SAVE_ACTIVITY,
            {
                "conversation_id": activity.conversation_id,
                "extracted_through": activity.extracted_through,
                "claimed_until": activity.claimed_until,
                "attempts": activity.attempts,
                "last_failure": activity.last_failure,
            },
        )

    def transcript(self, conversation_id: int, through_sequence_no: int) -> tuple[TranscriptLine, ...]:
        rows = self._cursor().execute(
            _TRANSCRIPT,
            {"conversation_id": conversation_id, "through": through_sequence_no, "deleted": DELETED_BY_CUSTOMER},
        )
        return tuple(entity(row, TranscriptLine) for row in rows)

    def latest(self, conversation_id: int) -> Extraction | None:
        row = self._cursor().execute(_LATEST, (conversation_id,)).fetchone()
        return None if row is None else _extraction(row)

    def add(self, extraction: Extraction) -> Extraction | None:
        lead = extraction.fields
        demo = lead.demo_datetime
        offset = None if demo is None else demo.utcoffset()
        row = (
            self._cursor()
            .execute(
                _ADD,
                {
                    "user_id": extraction.user_id,
                    "conversation_id": extraction.conversation_id,
                    "phone_number_id": extraction.phone_number_id,
                    "through_sequence_no": extraction.through_sequence_no,
                    **lead.as_dict(),
                    "demo_utc_offset_min": None if offset is None else int(offset.total_seconds() // 60),
                    "missing": Jsonb(dict(lead.missing)),
                    "credits_charged": extraction.credits_charged,
                    "response_id": extraction.response_id,
                    "input_tokens": extraction.input_tokens,
                    "output_tokens": extraction.output_tokens,
                    "created_at": extraction.created_at,
                },
            )
            .fetchone()
        )
        return None if row is None else _extraction(row)

    def list_latest(self, user_id: str, query: ExtractionQuery) -> ExtractionPage:
        conditions = [sql.SQL("e.user_id = %(user_id)s"), sql.SQL(_LATEST_OF_EACH)]
        if query.channel is not None:
            conditions.append(
                sql.SQL(
                    "e.phone_number_id IN (SELECT phone_number_id FROM phone_numbers"
                    " WHERE user_id = %(user_id)s AND type = %(channel)s)"
                )
            )
        if query.phone_number_id is not None:
            conditions.append(sql.SQL("e.phone_number_id = %(phone_number_id)s"))
        params: dict[str, Any] = {
            "user_id": user_id,
            "channel": None if query.channel is None else query.channel.value,
            "phone_number_id": query.phone_number_id,
            "since": query.since,
            "until": query.until,
            "cursor": query.cursor,
            "limit": query.limit + 1,
        }
        for name, condition in _SCORE_MINIMUMS.items():
            minimum = getattr(query, name)
            if minimum is not None:
                conditions.append(sql.SQL(condition))
                params[name] = minimum
        if query.has_demo is not None:
            conditions.append(sql.SQL("e.demo_datetime IS NOT NULL" if query.has_demo else "e.demo_datetime IS NULL"))
        if query.since is not None:
            conditions.append(sql.SQL("e.created_at >= %(since)s"))
        if query.until is not None:
            conditions.append(sql.SQL("e.created_at < %(until)s"))
        if query.cursor is not None:
            conditions.append(sql.SQL("e.extraction_id < %(cursor)s"))
        statement = sql.SQL(
            "SELECT {columns} FROM extractions e WHERE {conditions} ORDER BY e.extraction_id DESC LIMIT %(limit)s"
        ).format(
            columns=sql.SQL(", ").join(sql.SQL(f"e.{name.strip()}") for name in EXTRACTION_COLUMNS.split(",")),
            conditions=sql.SQL(" AND ").join(conditions),
        )
        rows = self._cursor().execute(statement, params, prepare=False).fetchall()
        return _page(rows, query.limit)

    def history(self, user_id: str, conversation_id: int, cursor: int | None, limit: int) -> ExtractionPage:
        rows = (
            self._cursor()
            .execute(
                _HISTORY,
                {"user_id": user_id, "conversation_id": conversation_id, "cursor": cursor, "limit": limit + 1},
            )
            .fetchall()
        )
        return _page(rows, limit)


def _extraction(row: Mapping[str, Any]) -> Extraction:
    lead = entity(row, LeadFields)
    if lead.demo_datetime is not None:
        customers_zone = timezone(timedelta(minutes=row["demo_utc_offset_min"] or 0))
        lead = evolve(lead, demo_datetime=lead.demo_datetime.astimezone(customers_zone))
    return Extraction(
        extraction_id=row["extraction_id"],
        user_id=row["user_id"],
        conversation_id=row["conversation_id"],
        phone_number_id=row["phone_number_id"],
        through_sequence_no=row["through_sequence_no"],
        fields=lead,
        created_at=row["created_at"],
        credits_charged=row["credits_charged"],
        response_id=row["response_id"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
    )


def _page(rows: list[Any], limit: int) -> ExtractionPage:
    """`rows` fetched with one more than `limit`: the extra one says there is a next page."""
    items = [_extraction(row) for row in rows[:limit]]
    return ExtractionPage(items=items, next_cursor=items[-1].extraction_id if len(rows) > limit else None)
