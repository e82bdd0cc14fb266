"""The use cases wired to the in-memory adapters, with a provisioned tenant, for fast unit tests.

`app` is a tenant (user + WhatsApp channel + agent + 10 credits) on in-memory storage, queue, locks
and caches, a FixedClock, SequentialIds, a ScriptedAI and a recording sender. `make_app` builds
one with other credits, ordering scope, turn policy or locks.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from dependency_injector import providers

from adapters.memory.message_store import InMemoryMessageStore
from adapters.memory.rejected_deliveries import InMemoryRejectedDeliveries
from adapters.memory.services import (
    FixedClock,
    InMemoryBalanceCache,
    InMemoryJobQueue,
    InMemoryLocks,
    InMemoryRouteCache,
    SequentialIds,
)
from adapters.memory.tables import InMemoryStore
from adapters.memory.turn_store import InMemoryTurnStore
from adapters.memory.unit_of_work import InMemoryUnitOfWork
from application.ports.services import Clock, JobQueue
from application.reply_delivery import ReplyDelivery
from application.routes import ChannelRoutes
from application.use_cases.add_channel import AddChannel, AddChannelCommand
from application.use_cases.apply_delivery_report import ApplyDeliveryReport
from application.use_cases.authenticate import Authenticate
from application.use_cases.create_agent import CreateAgent, CreateAgentCommand
from application.use_cases.create_user import CreateUser, CreateUserCommand
from application.use_cases.delete_agent import DeleteAgent
from application.use_cases.delete_channel import DeleteChannel
from application.use_cases.handle_inbound_message import HandleInbound, HandleInboundMessage, InboundOutcome
from application.use_cases.process_pending_messages import ProcessPendingMessages, ProcessScope, TurnPolicy
from application.use_cases.recover_stalled_work import RecoverStalledWork
from application.use_cases.reject_delivery import RejectDelivery
from application.use_cases.relink_agent import RelinkAgent
from application.use_cases.tenant_queries import TenantQueries
from application.use_cases.top_up_credits import TopUpCommand, TopUpCredits
from domain.channels import ChannelType
from domain.conversations import Conversation
from domain.credits import Credits, LedgerEntry
from domain.messages import Direction, InboundMessage, Message, OrderingScope
from domain.tenancy import Agent, Channel, User
from domain.turns import Turn
from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from tests.unit.fakes import CrashingSender, HookedClock, OneSenderForEveryType, ScriptedAI

if TYPE_CHECKING:
    from tests.unit.test_http_api import Api, Tenant

ADMIN_KEY = "admin-key-for-tests"
PHONE_NUMBER_ID = "pn_100"
ACCESS_TOKEN = "EAAG-test-access-token-0123456789"
PROMPT_ID = "pmpt_sales"
PROMPT_VERSION = "3"
CUSTOMER = "15550001"
STALLED_AFTER = timedelta(minutes=5)


class _StorageCallsInFlight:
    """The store's lock, counting how many storage calls one thread has open at once: in production each
    open unit of work or store call holds a pooled connection, so a worker must never open one inside
    another (with a small pool, that is how a busy worker deadlocks)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = threading.local()
        self.most = 0

    def acquire(self) -> bool:
        self._lock.acquire()
        self._depth.value = getattr(self._depth, "value", 0) + 1
        self.most = max(self.most, self._depth.value)
        return True

    def release(self) -> None:
        self._depth.value -= 1
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class App:
    """The use cases on in-memory adapters, a provisioned tenant, and helpers to drive them."""

    def __init__(
        self,
        *,
        credits: int,
        ordering: OrderingScope,
        policy: TurnPolicy,
        locks: InMemoryLocks,
        clock: Clock | None = None,
    ) -> None:
        self.store = InMemoryStore()
        self.storage_calls = _StorageCallsInFlight()
        self.store.lock = self.storage_calls  # type: ignore[assignment]
        self.uow_opened = 0
        self.clock: Any = clock or HookedClock()
        self.ids = SequentialIds()
        self.queue = InMemoryJobQueue()
        self.locks = locks
        self.route_cache = InMemoryRouteCache()
        self.balance_cache = InMemoryBalanceCache()
        self.ai = ScriptedAI()
        self.sender = CrashingSender()
        self.senders = OneSenderForEveryType(self.sender)
        self.routes = ChannelRoutes(self.uow, self.route_cache)
        self.ordering = ordering

        self.create_user = CreateUser(self.uow, self.ids, self.clock)
        self.authenticate = Authenticate(self.uow, admin_api_key=ADMIN_KEY)
        self.add_channel = AddChannel(self.uow, self.routes, self.ids, self.clock)
        self.create_agent = CreateAgent(self.uow, self.routes, self.ids, self.clock)
        self.top_up = TopUpCredits(self.uow, self.balance_cache, self.clock)
        self.queries = TenantQueries(self.uow, self.balance_cache)
        self.relink_agent = RelinkAgent(self.uow, self.routes, self.queue, self.clock, self.ordering)
        self.delete_agent = DeleteAgent(self.uow, self.routes, self.queue, self.clock, self.ordering)
        self.delete_channel = DeleteChannel(self.uow, self.routes, self.queue, self.clock, self.ordering)
        self.message_store = InMemoryMessageStore(self.store)
        self.rejected = InMemoryRejectedDeliveries()
        self.turn_store = InMemoryTurnStore(self.store)
        self.apply_report = ApplyDeliveryReport(self.message_store, self.clock)
        self.handle = self.handle_with_queue(self.queue)
        self.process = ProcessPendingMessages(
            self.turn_store,
            self.locks,
            self.routes,
            self.ai,
            ReplyDelivery(self.turn_store, self.senders, self.clock),
            self.balance_cache,
            self.clock,
            policy,
        )
        self.recover = self.recover_with_queue(self.queue)

        created = self.create_user(CreateUserCommand(email="owner@shop.example", company_name="Shop"))
        self.user: User = created.user
        self.api_key = created.api_key
        self.channel: Channel = self.add_channel(
            AddChannelCommand(
                user_id=self.user.user_id,
                type=ChannelType.WHATSAPP,
                external_number="+1 555 0100",
                access_token=ACCESS_TOKEN,
                phone_number_id=PHONE_NUMBER_ID,
                display_name="Shop",
            )
        )
        self.agent: Agent = self.create_agent(
            CreateAgentCommand(
                user_id=self.user.user_id,
                name="Sales",
                prompt_id=PROMPT_ID,
                phone_number_id=PHONE_NUMBER_ID,
                prompt_version=PROMPT_VERSION,
            )
        )
        if credits:
            self.top_up(TopUpCommand(user_id=self.user.user_id, amount=credits, reason="welcome"))
        self._wamids = itertools.count(1)

    def uow(self) -> InMemoryUnitOfWork:
        self.uow_opened += 1
        return InMemoryUnitOfWork(self.store)

    def handle_with_queue(self, queue: JobQueue) -> HandleInboundMessage:
        reject = RejectDelivery(self.rejected, self.clock)
        return HandleInboundMessage(self.message_store, self.routes, queue, self.clock, reject, self.ordering)

    def recover_with_queue(self, queue: JobQueue) -> RecoverStalledWork:
        return RecoverStalledWork(self.turn_store, queue, self.locks, self.clock, self.ordering, STALLED_AFTER)

    # --- driving -------------------------------------------------------------------------------

    def inbound(
        self,
        text: str | None,
        customer: str = CUSTOMER,
        wamid: str | None = None,
        sent_at: datetime | None = None,
        *,
        phone_number_id: str = PHONE_NUMBER_ID,
        content_type: str = "text",
        skip_reason: str | None = None,
    ) -> InboundMessage:
        return InboundMessage(
            phone_number_id=phone_number_id,
            platform_message_id=wamid or f"wamid.in{next(self._wamids)}",
            customer_id=customer,
            customer_name=f"Customer {customer}",
            content_type=content_type,
            text=text,
            skip_reason=skip_reason,
            sent_at=sent_at or self.clock.now(),
            raw={},
        )

    def receive(
        self,
        text: str | None,
        customer: str = CUSTOMER,
        wamid: str | None = None,
        sent_at: datetime | None = None,
        *,
        phone_number_id: str = PHONE_NUMBER_ID,
        content_type: str = "text",
        skip_reason: str | None = None,
    ) -> InboundOutcome:
        """A customer's message reaches the webhook."""
        message = self.inbound(
            text,
            customer,
            wamid,
            sent_at,
            phone_number_id=phone_number_id,
            content_type=content_type,
            skip_reason=skip_reason,
        )
        return self.handle(HandleInbound(message))

    def run(self, scope_key: str) -> int:
        """One worker job for `scope_key`."""
        return self.process(ProcessScope(scope_key))

    def drain(self, max_jobs: int = 100) -> int:
        """Run queued jobs until the queue is empty; the turns handled, in total."""
        handled = 0
        for _ in range(max_jobs):
            if not self.queue.jobs:
                return handled
            handled += self.run(self.queue.jobs.popleft())
        raise AssertionError(f"the queue did not empty within {max_jobs} jobs: {list(self.queue.jobs)}")

    # --- looking at the state ------------------------------------------------------------------

    def messages(self, direction: Direction | None = None) -> list[Message]:
        """Every stored message, in the order stored."""
        found = sorted(self.store.tables.messages.values(), key=lambda m: m.message_id)
        return [m for m in found if direction is None or m.direction is direction]

    def inbound_messages(self) -> list[Message]:
        return self.messages(Direction.INBOUND)

    def outbound_messages(self) -> list[Message]:
        return self.messages(Direction.OUTBOUND)

    def message(self, platform_message_id: str) -> Message:
        return next(m for m in self.messages() if m.platform_message_id == platform_message_id)

    def conversations(self) -> list[Conversation]:
        return sorted(self.store.tables.conversations.values(), key=lambda c: c.conversation_id)

    def turns(self) -> list[Turn]:
        return sorted(self.store.tables.turns.values(), key=lambda t: t.turn_id)

    def credits(self) -> Credits:
        with self.uow() as uow:
            return uow.credits.get(self.user.user_id)

    def charges(self) -> list[LedgerEntry]:
        with self.uow() as uow:
            return [e for e in uow.credits.ledger(self.user.user_id, 1000) if e.kind == "charge"]

    def sent_texts(self) -> list[str]:
        return [s.text for s in self.sender.sent]


MakeApp = Callable[..., App]


@pytest.fixture
def make_app() -> MakeApp:
    def make(
        *,
        credits: int = 10,
        ordering: OrderingScope = OrderingScope.CONVERSATION,
        policy: TurnPolicy | None = None,
        locks: InMemoryLocks | None = None,
        clock: Clock | None = None,
    ) -> App:
        return App(
            credits=credits,
            ordering=ordering,
            policy=policy or TurnPolicy(),
            locks=locks or InMemoryLocks(),
            clock=clock,
        )

    return make


@pytest.fixture
def app(make_app: MakeApp) -> App:
    return make_app()


# --- the HTTP app on the in-memory adapters, and tenants on it (tests/unit/test_http_*.py) ------------


@pytest.fixture
def api() -> Iterator[Api]:
    """The web app on dev mode's in-memory adapters, with a FixedClock the test moves."""
    from tests.unit.test_http_api import Api

    container = build_container(Settings.from_env({}, dev=True))
    clock = FixedClock()
    container.clock.override(providers.Object(clock))
    yield Api(create_app(container).test_client(), container, clock)
    container.clock.reset_override()


@pytest.fixture
def tenant(api: Api) -> Tenant:
    return api.create_tenant("owner@shop.example")


@pytest.fixture
def other(api: Api) -> Tenant:
    return api.create_tenant("rival@elsewhere.example")
