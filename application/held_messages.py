"""What resuming the bot does, shared by every way it resumes (a conversation's PATCH, its channel's
PATCH, a timed pause that ran out): the held messages nobody answered go back to the AI, in order.

Runs inside the caller's unit of work, under the conversation's lock (`ConversationsRepository.lock`):
the worker holds a batch only while the conversation and its channel are still paused as it read them,
so a message is either held before the held messages are read here, or not held at all.
"""

from __future__ import annotations

import logging
from datetime import datetime

from application.ports.repositories import UnitOfWork
from application.ports.services import JobQueue, QueueUnavailable
from domain.channels import BotState
from domain.conversations import Conversation
from domain.handoff import BotResumed, release_held
from domain.messages import OrderingScope

log = logging.getLogger(__name__)


def release_if_answering(
    uow: UnitOfWork, conversation: Conversation, channel_bot: BotState, now: datetime
) -> BotResumed | None:
    """When the AI answers the (locked, saved) conversation, release its held messages; None when it does
    not (still paused, or its channel is)."""
    if not conversation.ai_answers(channel_bot):
        return None
    conversations = uow.conversations
    held = conversations.held(conversation.conversation_id)
    resumed = release_held(conversation, held, conversations.last_reply_sequence_no(conversation.conversation_id), now)
    conversations.change_status(resumed.to_answer, now)
    conversations.change_status(resumed.answered, now)
    return resumed


def queue_released(queue: JobQueue, ordering: OrderingScope, resumed: BotResumed | None) -> None:
    """After the commit: ask a worker to answer what was released. A queue that is away is no failure:
    the released messages are `received`, and the recovery sweep finds them."""
    if resumed is None or not resumed.released:
        return
    conversation = resumed.conversation
    scope = ordering.key(conversation_id=conversation.conversation_id, phone_number_id=conversation.phone_number_id)
    try:
        queue.enqueue_scope(scope)
    except QueueUnavailable:
        log.warning("released_messages_not_queued", extra={"scope": scope})
