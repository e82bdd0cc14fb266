"""The agents' seats on their channels in memory: what a relink reads, and its decision saved."""

from __future__ import annotations

from attrs import evolve

from adapters.memory.repository import InMemoryRepository
from domain.conversations import Conversation
from domain.errors import Conflict, InvalidTransition
from domain.messages import Direction, MessageStatus
from domain.relink import Relink, Seat
from domain.tenancy import Agent
from domain.turns import TurnStatus


class InMemorySeatsRepository(InMemoryRepository):
    """The unit of work holds the store's lock: nothing else changes the seat while it is decided on."""

    def seat(self, agent: Agent) -> Seat:
        t = self.t
        conversations = tuple(
            sorted(
                (
                    c
                    for c in t.conversations.values()
                    if c.is_active and c.agent_id == agent.agent_id and c.phone_number_id == agent.phone_number_id
                ),
                key=lambda c: c.conversation_id,
            )
        )
        ids = {c.conversation_id for c in conversations}
        waiting = tuple(
            sorted(
                (
                    turn
                    for turn in t.turns.values()
                    if turn.conversation_id in ids and turn.status is TurnStatus.AWAITING_AI
                ),
                key=lambda turn: turn.turn_id,
            )
        )
        in_waiting = {message_id for turn in waiting for message_id in turn.inbound_ids}
        unanswered = tuple(
            sorted(
                (
                    m
                    for m in t.messages.values()
                    if m.conversation_id in ids
                    and m.direction is Direction.INBOUND
                    and (
                        m.status in (MessageStatus.RECEIVED, MessageStatus.HELD)
                        or (m.status is MessageStatus.PROCESSING and m.message_id in in_waiting)
                    )
                ),
                key=lambda m: (m.conversation_id, m.sequence_no),
            )
        )
        return Seat(agent, conversations, waiting, unanswered)

    def save(self, relink: Relink) -> tuple[int, ...]:
        t = self.t
        for agent in relink.agents:
            if agent.phone_number_id is not None and any(
                a.phone_number_id == agent.phone_number_id and a.agent_id != agent.agent_id for a in t.agents.values()
            ):
                raise Conflict(f"channel {agent.phone_number_id} already has an agent", field="phone_number_id")
            t.agents[agent.agent_id] = agent
        for departure in relink.departures:
            for archived in departure.archived:
                t.conversations[archived.conversation_id] = t.conversations[archived.conversation_id].archive()
                t.archives[t.next_id("archives")] = archived
            for withdrawn in departure.withdrawn:
                current = t.turns.get(withdrawn.turn.turn_id)
                if current is None or current.status is not withdrawn.before:
                    raise InvalidTransition(f"turn {withdrawn.turn.turn_id} moved on while the relink was decided")
                t.turns[withdrawn.turn.turn_id] = withdrawn.turn
                t.move_credits(withdrawn.release, withdrawn.turn.updated_at)
            for change in departure.skipped:
                for message_id in change.message_ids:
                    message = t.messages[message_id]
                    if message.conversation_id != change.conversation_id:
                        continue  # as in PostgreSQL, where the conversation is part of the condition
                    t.messages[message_id] = evolve(
                        message, status=change.after, failure_reason=change.reason, updated_at=relink.at
                    )
        opened = []
        for reopened in relink.reopened:
            conversation = Conversation(
                conversation_id=t.next_id("conversations"),
                user_id=reopened.user_id,
                agent_id=reopened.agent_id,
                phone_number_id=reopened.phone_number_id,
                customer_id=reopened.customer_id,
                customer_name=reopened.customer_name,
                openai_conversation_id=None,
                openai_last_item_id=None,
                is_active=True,
                last_sequence_no=reopened.last_sequence_no,
                created_at=reopened.at,
                last_message_at=reopened.at,
                last_customer_message_at=reopened.last_customer_message_at,
            )
            if any(
                c.is_active and c.agent_id == conversation.agent_id and c.customer_id == conversation.customer_id
                for c in t.conversations.values()
            ):
                raise InvalidTransition(f"agent {conversation.agent_id} has an active conversation with the customer")
            t.conversations[conversation.conversation_id] = conversation
            for carried in reopened.messages:
                message = t.messages[carried.message_id]
                if message.status is not carried.before or message.conversation_id != carried.from_conversation_id:
                    raise InvalidTransition(f"message {carried.message_id} moved on while the relink was decided")
                t.messages[carried.message_id] = evolve(
                    message,
                    conversation_id=conversation.conversation_id,
                    sequence_no=carried.sequence_no,
                    status=MessageStatus.RECEIVED,
                    failure_reason=None,
                    turn_id=None,
                    updated_at=reopened.at,
                )
            opened.append(conversation.conversation_id)
        return tuple(opened)
