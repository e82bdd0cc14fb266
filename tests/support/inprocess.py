"""The web app and the worker in this process, on a container of the caller's choice (in memory, or
PostgreSQL and Redis), for tests that drive the whole service through HTTP many times over.

Jobs go to an in-process queue that `drain` works off with the real worker use case, so an exception
in a job fails the test instead of vanishing into a worker's log; replies are recorded, not sent.
"""

from __future__ import annotations

import json
import uuid

from dependency_injector import providers
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from adapters.memory.services import InMemoryJobQueue, RecordingSender
from adapters.meta.senders import SendersByType
from application.ports.repositories import MessageQuery
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.control_conversation_bot import ControlConversationBotCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.process_pending_messages import ProcessScope
from application.use_cases.top_up_credits import TopUpCommand
from domain.channels import BotState, ChannelType
from domain.credits import MAX_TOP_UP
from domain.errors import ConversationArchived
from domain.messages import Message
from entrypoints.container import Container
from entrypoints.dev import whatsapp_text
from entrypoints.http.app import create_app
from entrypoints.http.signature import sign
from tests.support.fuzzing import ApiRequest

#: The channels the documented deliveries are addressed to (tests/unit/fixtures).
WHATSAPP_NUMBERS = ("106540352242922", "106540352242999")
INSTAGRAM_ACCOUNT = "17841400000000001"
#: The customer of the documented WhatsApp deliveries.
CUSTOMER = "16505551234"


class InProcessService:
    """A tenant with a channel and an agent for every documented delivery, behind the real Flask app."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.queue = InMemoryJobQueue()
        self.sender = RecordingSender()
        container.queue.override(providers.Object(self.queue))
        container.senders.override(providers.Object(SendersByType(dict.fromkeys(ChannelType, self.sender))))
        self.client: FlaskClient = create_app(container).test_client()
        self.settings = container.settings()
        self.admin = {self.settings.api_key_header: self.settings.admin_api_key}
        run = uuid.uuid4().hex[:8]
        created = container.create_user()(CreateUserCommand(email=f"fuzz-{run}@example.com", company_name="Fuzz"))
        self.user_id = created.user.user_id
        self.tenant = {self.settings.api_key_header: created.api_key}
        channels = [(ChannelType.WHATSAPP, number) for number in WHATSAPP_NUMBERS]
        for channel_type, number in [*channels, (ChannelType.INSTAGRAM, INSTAGRAM_ACCOUNT)]:
            container.add_channel()(
                AddChannelCommand(self.user_id, channel_type, "+15550100", "token-0123456789", phone_number_id=number)
            )
            container.create_agent()(CreateAgentCommand(self.user_id, "Agent", "pmpt_fuzz", number))
        container.top_up_credits()(TopUpCommand(self.user_id, MAX_TOP_UP, "fuzzing"))

    def deliver(self, raw: bytes) -> TestResponse:
        """POST `raw` to the webhook, signed as Meta signs it."""
        signature = sign(raw, self.settings.webhook_secret)
        return self.client.post(
            self.settings.webhook_path,
            data=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
        )

    def deliver_valid_text(self) -> str:
        """A customer's ordinary text message, sent now; returns its platform message id."""
        wamid = f"wamid.valid{uuid.uuid4().hex}"
        answer = self.deliver(
            json.dumps(whatsapp_text(WHATSAPP_NUMBERS[0], CUSTOMER, "Still there?", wamid=wamid)).encode()
        )
        assert answer.status_code == 200, answer.data
        return wamid

    def resume_bots(self) -> None:
        """Give the customer's conversations back to the AI: a delivery may have carried an echo of the
        business writing from its own app, which pauses the bot (as it should) until someone resumes it."""
        query = MessageQuery(phone_number_id=WHATSAPP_NUMBERS[0], customer_id=CUSTOMER, limit=100)
        messages = self.container.tenant_queries().messages(self.user_id, query).items
        control = self.container.control_conversation_bot()
        for conversation_id in sorted({m.conversation_id for m in messages}):
            try:
                control(ControlConversationBotCommand(self.user_id, conversation_id, BotState.ACTIVE))
            except ConversationArchived:
                continue
        self.drain()

    def drain(self, max_jobs: int = 200) -> None:
        """Run every queued job with the real worker use case; an exception in a job fails the caller."""
        process = self.container.process_pending_messages()
        for _ in range(max_jobs):
            if not self.queue.jobs:
                return
            process(ProcessScope(self.queue.jobs.popleft()))
        raise AssertionError(f"the queue did not empty within {max_jobs} jobs")

    def message(self, platform_message_id: str) -> Message:
        query = MessageQuery(phone_number_id=WHATSAPP_NUMBERS[0], customer_id=CUSTOMER, limit=100)
        messages = self.container.tenant_queries().messages(self.user_id, query).items
        return next(m for m in messages if m.platform_message_id == platform_message_id)

    def call(self, request: ApiRequest) -> TestResponse:
        """Send a management API request as the tenant (its own id unless the request names another)."""
        headers = dict(self.admin if request.admin else self.tenant)
        if request.idempotency_key is not None:
            headers["Idempotency-Key"] = request.idempotency_key
        return self.client.open(request.url(self.user_id), method=request.method, headers=headers, data=request.body)
