"""`mcagent seed`: a realistic demo in the database of DATABASE_URL, for trying the API.

Three businesses, each with its channels (WhatsApp, Instagram, web chat), an agent on each channel,
credits topped up twice, and customers who wrote and were answered: every message goes through the
service's own use cases — the webhook's (HandleInboundMessage) and the worker's
(ProcessPendingMessages) — with canned replies in place of OpenAI and replies recorded, not sent to
Meta. The first business then moved its WhatsApp number to a new agent (its conversations there are
archived), and at the second a person took a conversation over (the bot paused, a reply from the team).
The tenants' API keys are printed once, as `POST /users` shows them once.

It refuses to run twice: the first tenant's e-mail is taken on a seeded database, and that is found
before anything is written (exit code 1, nothing changed).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from attrs import frozen
from dependency_injector import providers

from adapters.memory.services import InMemoryJobQueue, RecordingSender
from adapters.meta.senders import SendersByType
from adapters.openai.canned import CannedResponder
from application.ports.repositories import ConversationQuery
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.control_conversation_bot import ControlConversationBotCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.handle_inbound_message import HandleInbound
from application.use_cases.process_pending_messages import ProcessScope
from application.use_cases.relink_agent import RelinkAgentCommand
from application.use_cases.send_human_reply import SendHumanReplyCommand
from application.use_cases.top_up_credits import TopUpCommand
from domain.channels import BotState, ChannelType
from domain.errors import Conflict
from domain.messages import InboundMessage
from entrypoints.container import Container


@frozen
class DemoChannel:
    type: ChannelType
    phone_number_id: str
    external_number: str
    display_name: str
    agent_name: str
    prompt_id: str


@frozen
class DemoTenant:
    email: str
    company_name: str
    channels: tuple[DemoChannel, ...]
    top_ups: tuple[tuple[int, str], ...]
    #: (channel, customer id, customer name, what the customer writes, one message after another)
    chats: tuple[tuple[str, str, str, tuple[str, ...]], ...]


TENANTS = (
    DemoTenant(
        email="support@northwind-bikes.example",
        company_name="Northwind Bikes",
        channels=(
            DemoChannel(
                ChannelType.WHATSAPP, "106540000000101", "+1 555 0101", "Northwind WhatsApp", "Sales", "pmpt_nw_sales"
            ),
            DemoChannel(
                ChannelType.INSTAGRAM, "17841400000000101", "@northwindbikes", "Northwind IG", "Social", "pmpt_nw_ig"
            ),
            DemoChannel(ChannelType.WEBCHAT, "", "northwind-bikes.example", "Website chat", "Web", "pmpt_nw_web"),
        ),
        top_ups=((500, "welcome credits"), (2000, "invoice NW-2026-001")),
        chats=(
            (
                "106540000000101",
                "15550001001",
                "Ana",
                ("Hi! Do you have the Trail 500 in size M?", "Can I pick it up?"),
            ),
            ("106540000000101", "15550001002", "Ben", ("My order #4411 has not arrived yet",)),
            ("17841400000000101", "990000000000101", "carla.rides", ("Do you ship to Canada?",)),
        ),
    ),
    DemoTenant(
        email="front-desk@lumen-dental.example",
        company_name="Lumen Dental",
        channels=(
            DemoChannel(ChannelType.WHATSAPP, "106540000000201", "+1 555 0201", "Lumen front desk", "Desk", "pmpt_ld"),
            DemoChannel(ChannelType.WEBCHAT, "", "lumen-dental.example", "Lumen website", "Web desk", "pmpt_ld_web"),
        ),
        top_ups=((1000, "welcome credits"), (1000, "invoice LD-2026-014")),
        chats=(
            ("106540000000201", "15550002001", "Dmitri", ("I need to move my appointment on Friday", "Monday works")),
        ),
    ),
    DemoTenant(
        email="hola@casa-verde.example",
        company_name="Casa Verde Café",
        channels=(
            DemoChannel(
                ChannelType.INSTAGRAM, "17841400000000301", "@casaverdecafe", "Casa Verde IG", "Barista", "pmpt_cv"
            ),
        ),
        top_ups=((300, "welcome credits"), (300, "monthly plan")),
        chats=(("17841400000000301", "990000000000301", "eli.eats", ("Are you open on Sunday?", "Vegan options?")),),
    ),
)

REPLIES = {
    "Hi! Do you have the Trail 500 in size M?": "Yes! Two Trail 500s in M are in the Oak Street store today.",
    "Can I pick it up?": "Of course: we hold it for you until Saturday 6 pm, under your name.",
    "My order #4411 has not arrived yet": "Sorry about that! #4411 left our warehouse Tuesday; it arrives tomorrow.",
    "Do you ship to Canada?": "We do, in 3 to 5 business days, free above $150.",
    "I need to move my appointment on Friday": "No problem. Monday 10:00 or Tuesday 15:30 are free; which suits you?",
    "Monday works": "Done: Monday 10:00 with Dr. Okafor. See you then!",
    "Are you open on Sunday?": "Sundays 9:00 to 15:00, brunch until 13:00.",
    "Vegan options?": "Plenty: oat-milk drinks, the tofu scramble and two vegan cakes every day.",
}


class AlreadySeeded(Exception):
    """The demo is in this database already; nothing was changed."""


@frozen
class SeededTenant:
    user_id: str
    company_name: str
    api_key: str
    phone_number_ids: tuple[str, ...]


def seed(container: Container) -> list[SeededTenant]:
    """Fill the container's database with the demo; AlreadySeeded, before any write, when it is there."""
    queue = InMemoryJobQueue()
    container.queue.override(providers.Object(queue))
    container.ai.override(providers.Object(CannedResponder(REPLIES, "Thanks! A colleague will get back to you.")))
    container.senders.override(providers.Object(SendersByType(dict.fromkeys(ChannelType, RecordingSender()))))
    seeded = []
    for index, tenant in enumerate(TENANTS):
        try:
            seeded.append(_seed_tenant(container, tenant, queue))
        except Conflict as error:
            if index == 0:
                raise AlreadySeeded(f"{tenant.email} exists: this database is seeded already") from error
            raise
    seed_archived_relink(container, seeded[0])
    seed_paused_conversation(container, seeded[1])
    return seeded


def _seed_tenant(container: Container, tenant: DemoTenant, queue: InMemoryJobQueue) -> SeededTenant:
    created = container.create_user()(CreateUserCommand(email=tenant.email, company_name=tenant.company_name))
    user_id = created.user.user_id
    ids = []
    for channel in tenant.channels:
        added = container.add_channel()(
            AddChannelCommand(
                user_id=user_id,
                type=channel.type,
                external_number=channel.external_number,
                access_token=None if channel.type is ChannelType.WEBCHAT else f"EAAG-demo-{uuid.uuid4().hex}",
                phone_number_id=channel.phone_number_id or None,
                display_name=channel.display_name,
            )
        )
        container.create_agent()(
            CreateAgentCommand(user_id, channel.agent_name, channel.prompt_id, added.phone_number_id)
        )
        ids.append(added.phone_number_id)
    for amount, reason in tenant.top_ups:
        container.top_up_credits()(TopUpCommand(user_id=user_id, amount=amount, reason=reason))
    for phone_number_id, customer, name, texts in tenant.chats:
        _chat(container, queue, phone_number_id, customer, name, texts)
    return SeededTenant(user_id, tenant.company_name, created.api_key, tuple(ids))


def _chat(
    container: Container, queue: InMemoryJobQueue, phone_number_id: str, customer: str, name: str, texts: Sequence[str]
) -> None:
    """A customer writes each text a few minutes apart, and each is answered before the next."""
    handle, process = container.handle_inbound_message(), container.process_pending_messages()
    now = container.clock().now()
    for minutes_ago, text in zip(range(5 * len(texts), 0, -5), texts, strict=True):
        message = InboundMessage(
            phone_number_id=phone_number_id,
            platform_message_id=f"wamid.seed{uuid.uuid4().hex}",
            customer_id=customer,
            customer_name=name,
            content_type="text",
            text=text,
            skip_reason=None,
            sent_at=now - timedelta(minutes=minutes_ago),
            raw={"seed": True},
        )
        handle(HandleInbound(message))
        while queue.jobs:
            process(ProcessScope(queue.jobs.popleft()))


def seed_archived_relink(container: Container, tenant: SeededTenant) -> None:
    """An agent relinked to the tenant's WhatsApp number, archiving the conversations there.

    A second agent (a new prompt) is created on no channel and moved to the tenant's first channel with
    RelinkAgent, as `PATCH /users/{id}/agents/{agent_id}` does: the first agent is unlinked (kept, listed
    with `phone_number_id: null`) and its conversations there archived; customers who write again start
    new ones with the new agent.
    """
    spring = container.create_agent()(CreateAgentCommand(tenant.user_id, "Sales (spring)", "pmpt_nw_spring"))
    container.relink_agent()(
        RelinkAgentCommand(user_id=tenant.user_id, agent_id=spring.agent_id, phone_number_id=tenant.phone_number_ids[0])
    )


#: What a person from the team writes when taking the paused conversation over.
HUMAN_REPLY = "Hi, this is Maria from the front desk: I have moved you to Monday 10:00 and noted it for Dr. Okafor."


def seed_paused_conversation(container: Container, tenant: SeededTenant) -> None:
    """A conversation a person took over, with the bot paused.

    The tenant's latest conversation is paused (ControlConversationBot, as `PATCH
    /users/{id}/conversations/{conversation_id}` with `{"bot": "paused"}` does) and a person replies in it
    (SendHumanReply: a message with `sender: human`, recorded as sent, not sent to Meta).
    """
    [conversation] = container.tenant_queries().conversations(tenant.user_id, ConversationQuery(limit=1)).items
    container.control_conversation_bot()(
        ControlConversationBotCommand(tenant.user_id, conversation.conversation_id, BotState.PAUSED)
    )
    container.send_human_reply()(
        SendHumanReplyCommand(tenant.user_id, conversation.conversation_id, HUMAN_REPLY, idempotency_key="seed")
    )


def banner(seeded: Sequence[SeededTenant]) -> str:
    lines = ["Seeded demo tenants (API keys are shown this once):"]
    for tenant in seeded:
        lines.append(f"  {tenant.company_name:<18} {tenant.user_id}   API key: {tenant.api_key}")
        lines.append(f"  {'':<18} channels: {', '.join(tenant.phone_number_ids)}")
    return "\n".join(lines)
