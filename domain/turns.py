"""An AI turn: one OpenAI call answering one or more pending customer messages, one charge."""

from __future__ import annotations

import enum
from datetime import datetime

from attrs import frozen


class TurnStatus(enum.StrEnum):
    AWAITING_AI = "awaiting_ai"  # credits reserved, OpenAI not answered yet
    REPLYING = "replying"  # reply stored and charged, outbound messages being sent
    DONE = "done"
    FAILED = "failed"  # the AI call failed for good; reservation released

    @property
    def open(self) -> bool:
        return self in (TurnStatus.AWAITING_AI, TurnStatus.REPLYING)


@frozen
class Turn:
    turn_id: int
    user_id: str
    conversation_id: int
    phone_number_id: str
    status: TurnStatus
    inbound_ids: tuple[int, ...]
    credits_reserved: int
    attempts: int
    response_id: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


@frozen
class AIReply:
    text: str
    response_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    last_item_id: str | None = None
