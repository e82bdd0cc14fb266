"""A person from the team takes a conversation over (pauses its bot, for a while or until resumed), or
gives it back to the AI, which then answers what nobody answered while it was paused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from attrs import frozen

from application.held_messages import queue_released, release_if_answering
from application.ports.repositories import UnitOfWork
from application.ports.services import Clock, JobQueue
from domain import limits
from domain.channels import BotState
from domain.conversations import Conversation
from domain.errors import ConversationArchived, NotFound, ValidationFailed
from domain.messages import OrderingScope


@frozen
class ControlConversationBotCommand:
    user_id: str
    conversation_id: int
    bot: BotState
    resume_after_minutes: int | None = None


class ControlConversationBot:
    def __init__(self, uow: Callable[[], UnitOfWork], queue: JobQueue, clock: Clock, ordering: OrderingScope) -> None:
        self._uow = uow
        self._queue = queue
        self._clock = clock
        self._ordering = ordering

    def __call__(self, command: ControlConversationBotCommand) -> Conversation:
        resume_after = _resume_after(command)
        now = self._clock.now()
        resumed = None
        with self._uow() as uow:
            conversation = uow.conversations.lock(command.user_id, command.conversation_id)
            if conversation is None:
                raise NotFound(f"conversation {command.conversation_id} not found")
            if not conversation.is_active:
                raise ConversationArchived(f"conversation {command.conversation_id} is archived")
            if command.bot is BotState.PAUSED:
                changed = conversation.pause(now, resume_after)
                uow.conversations.save_bot(changed)
            else:
                changed = conversation.resume()
                uow.conversations.save_bot(changed)
                channel = uow.channels.get(command.user_id, conversation.phone_number_id)
                channel_bot = BotState.ACTIVE if channel is None else channel.bot
                resumed = release_if_answering(uow, changed, channel_bot, now)
            uow.commit()
        queue_released(self._queue, self._ordering, resumed)
        return changed


def _resume_after(command: ControlConversationBotCommand) -> timedelta | None:
    minutes = command.resume_after_minutes
    if minutes is None:
        return None
    if command.bot is not BotState.PAUSED:
        raise ValidationFailed("resume_after_minutes goes only with bot 'paused'", field="resume_after_minutes")
    if not 1 <= minutes <= limits.PAUSE_MINUTES:
        raise ValidationFailed(
            f"resume_after_minutes must be between 1 and {limits.PAUSE_MINUTES}", field="resume_after_minutes"
        )
    return timedelta(minutes=minutes)
