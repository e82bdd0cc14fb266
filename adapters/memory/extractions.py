"""Lead extractions in memory: the conversations' extraction state, and the extractions kept as history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from attrs import evolve

from adapters.memory.repository import InMemoryRepository
from application.ports.lead_storage import ExtractionPage, ExtractionQuery
from domain.conversations import Conversation
from domain.extraction import Extraction, LeadActivity, TranscriptLine
from domain.messages import DELETED_BY_CUSTOMER


class InMemoryExtractionsRepository(InMemoryRepository):
    """The unit of work holds the store's lock: a claim or an activity read is as good as a row lock."""

    def claim_due(self, quiet_before: datetime, now: datetime, claim_until: datetime, limit: int) -> list[int]:
        interval = now - quiet_before
        due = sorted(
            (
                activity
                for activity in map(self._activity_of, self.t.conversations.values())
                if activity.is_due(now, interval)
            ),
            key=lambda activity: (activity.last_message_at, activity.conversation_id),
        )[:limit]
        for activity in due:
            self.t.extraction_states[activity.conversation_id] = evolve(activity, claimed_until=claim_until)
        return [activity.conversation_id for activity in due]

    def activity(self, conversation_id: int) -> LeadActivity | None:
        conversation = self.t.conversations.get(conversation_id)
        return None if conversation is None else self._activity_of(conversation)

    def save_activity(self, activity: LeadActivity) -> None:
        self.t.extraction_states[activity.conversation_id] = activity

    def transcript(self, conversation_id: int, through_sequence_no: int) -> tuple[TranscriptLine, ...]:
        kept = sorted(
            (
                m
                for m in self.t.messages.values()
                if m.conversation_id == conversation_id
                and m.sequence_no <= through_sequence_no
                and m.text
                and m.failure_reason != DELETED_BY_CUSTOMER
            ),
            key=lambda m: m.sequence_no,
        )
        return tuple(TranscriptLine(m.sequence_no, m.created_at, m.sender.value, m.text or "") for m in kept)

    def latest(self, conversation_id: int) -> Extraction | None:
        return max(
            (e for e in self.t.extractions.values() if e.conversation_id == conversation_id),
            key=_id,
            default=None,
        )

    def add(self, extraction: Extraction) -> Extraction | None:
        if any(
            e.conversation_id == extraction.conversation_id and e.through_sequence_no == extraction.through_sequence_no
            for e in self.t.extractions.values()
        ):
            return None
        stored = evolve(extraction, extraction_id=self.t.next_id("extractions"))
        self.t.extractions[_id(stored)] = stored
        return stored

    def list_latest(self, user_id: str, query: ExtractionQuery) -> ExtractionPage:
        latest: dict[int, Extraction] = {}
        for extraction in self.t.extractions.values():
            if extraction.user_id != user_id:
                continue
            current = latest.get(extraction.conversation_id)
            if current is None or _id(extraction) > _id(current):
                latest[extraction.conversation_id] = extraction
        return _page([e for e in latest.values() if self._matches(e, query)], query.cursor, query.limit)

    def history(self, user_id: str, conversation_id: int, cursor: int | None, limit: int) -> ExtractionPage:
        return _page(
            [e for e in self.t.extractions.values() if e.user_id == user_id and e.conversation_id == conversation_id],
            cursor,
            limit,
        )

    def _activity_of(self, conversation: Conversation) -> LeadActivity:
        fresh = LeadActivity(
            conversation_id=conversation.conversation_id,
            user_id=conversation.user_id,
            phone_number_id=conversation.phone_number_id,
            agent_id=conversation.agent_id,
            last_message_at=conversation.last_message_at,
            last_sequence_no=conversation.last_sequence_no,
        )
        saved = self.t.extraction_states.get(conversation.conversation_id)
        if saved is None:
            return fresh
        return evolve(
            fresh,
            extracted_through=saved.extracted_through,
            claimed_until=saved.claimed_until,
            attempts=saved.attempts,
            last_failure=saved.last_failure,
        )

    def _matches(self, extraction: Extraction, query: ExtractionQuery) -> bool:
        lead = extraction.fields
        if query.channel is not None:
            channel = self.t.channels.get(extraction.phone_number_id)
            if channel is None or channel.type is not query.channel:
                return False
        if query.phone_number_id is not None and extraction.phone_number_id != query.phone_number_id:
            return False
        minimums = {
            "urgency": query.min_urgency,
            "budget": query.min_budget,
            "fit": query.min_fit,
            "engagement": query.min_engagement,
        }
        for name, minimum in minimums.items():
            score = lead.score(name)
            if minimum is not None and (score is None or score < minimum):
                return False
        if query.has_demo is not None and (lead.demo_datetime is not None) is not query.has_demo:
            return False
        if query.since is not None and extraction.created_at < query.since:
            return False
        return query.until is None or extraction.created_at < query.until


def _id(extraction: Extraction) -> int:
    assert extraction.extraction_id is not None, "a stored extraction has its id"
    return extraction.extraction_id


def _page(found: Sequence[Extraction], cursor: int | None, limit: int) -> ExtractionPage:
    """Newest first, from below `cursor`; the next cursor only when there is more."""
    ordered = sorted((e for e in found if cursor is None or _id(e) < cursor), key=_id, reverse=True)
    items = ordered[:limit]
    return ExtractionPage(items=items, next_cursor=_id(items[-1]) if len(ordered) > limit and items else None)
