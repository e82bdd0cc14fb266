"""Small fakes the unit tests script by hand, next to the in-memory adapters of `adapters/memory`."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from datetime import datetime

from attrs import define, field

from adapters.memory.services import FixedClock, InMemoryLocks, RecordingSender
from application.ports.pipeline import MessageNotStorable, MessageStore
from application.ports.repositories import StorageUnavailable
from application.ports.services import AIRequest, AIRequestFailed, ChannelSender, QueueUnavailable
from domain.channels import ChannelType
from domain.messages import BusinessEcho, InboundMessage, Message, RecordedInbound
from domain.tenancy import Channel, Route
from domain.turns import AIReply


class ScriptedAI:
    """An AIResponder that records every request and answers "reply to: <inputs joined by | >".

    Tests can queue replies (`reply_next`), failures (`fail_next`) and things to do while a call
    is under way (`during_next_call`: a customer writing meanwhile, or the worker dying).
    """

    label = "scripted"

    def __init__(self) -> None:
        #: False: the AI is being waited out (its circuit is open).
        self.available = True
        self.requests: list[AIRequest] = []
        self.started: list[dict[str, str]] = []
        self._replies: deque[str] = deque()
        self._failures: deque[AIRequestFailed] = deque()
        self._during: deque[Callable[[AIRequest], object]] = deque()
        self._conversation_ids = itertools.count(1)
        self._response_ids = itertools.count(1)

    def reply_next(self, *texts: str) -> None:
        self._replies.extend(texts)

    def fail_next(self, times: int = 1, reason: str = "upstream unavailable", *, retryable: bool = False) -> None:
        self._failures.extend(AIRequestFailed(reason, retryable=retryable) for _ in range(times))

    def during_next_call(self, action: Callable[[AIRequest], object]) -> None:
        """Run `action` inside the next `respond` call, after the request was recorded."""
        self._during.append(action)

    def start_conversation(self, *, metadata: dict[str, str]) -> str:
        self.started.append(dict(metadata))
        return f"conv_{next(self._conversation_ids)}"

    def respond(self, request: AIRequest) -> AIReply:
        self.requests.append(request)
        if self._during:
            self._during.popleft()(request)
        if self._failures:
            raise self._failures.popleft()
        text = self._replies.popleft() if self._replies else "reply to: " + " | ".join(request.inputs)
        response_number = next(self._response_ids)
        return AIReply(
            text=text,
            response_id=f"resp_{response_number}",
            input_tokens=10,
            output_tokens=5,
            last_item_id=f"item_{response_number}",
        )

    @property
    def inputs(self) -> list[tuple[str, ...]]:
        """The inputs of every call, in call order."""
        return [request.inputs for request in self.requests]


class CrashingSender(RecordingSender):
    """A RecordingSender that can also die in the middle of a send (the worker process is killed),
    or run something while a send is under way."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes: deque[BaseException] = deque()
        self.during_send: deque[Callable[[], object]] = deque()

    def send_text(self, channel: Channel, recipient_id: str, text: str, *, human_agent: bool = False) -> str:
        if self.during_send:
            self.during_send.popleft()()
        if self.crashes:
            raise self.crashes.popleft()
        return super().send_text(channel, recipient_id, text, human_agent=human_agent)


class OneSenderForEveryType:
    """ChannelSenders that hand out the same sender whatever the channel type."""

    def __init__(self, sender: ChannelSender) -> None:
        self.sender = sender

    def for_type(self, channel_type: ChannelType) -> ChannelSender:
        return self.sender

    def available(self, channel_type: ChannelType) -> bool:
        return self.sender.available


class DownQueue:
    """A JobQueue whose backend (Redis) is down."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def enqueue_scope(self, scope_key: str, *, correlation_id: str | None = None, force: bool = False) -> None:
        self.attempts.append(scope_key)
        raise QueueUnavailable("redis is down")

    def taken(self, scope_key: str) -> None:
        raise QueueUnavailable("redis is down")


@define
class RefusingMessageStore:
    """A MessageStore over another that refuses the messages whose ids are in `refused` as not storable
    (as PostgreSQL refuses a value over an index's size), and every message while `down`."""

    inner: MessageStore
    refused: set[str] = field(factory=set)
    down: bool = False

    def record_inbound(self, route: Route, inbound: InboundMessage, now: datetime) -> RecordedInbound | None:
        if self.down:
            raise StorageUnavailable("the database connection failed: connection refused")
        if inbound.platform_message_id in self.refused:
            raise MessageNotStorable("54000 index row requires 10016 bytes, maximum size is 8191")
        return self.inner.record_inbound(route, inbound, now)

    def record_echo(self, route: Route, echo: BusinessEcho, now: datetime) -> RecordedInbound | None:
        if self.down:
            raise StorageUnavailable("the database connection failed: connection refused")
        return self.inner.record_echo(route, echo, now)

    def outbound(self, phone_number_id: str, platform_message_id: str) -> Message | None:
        return self.inner.outbound(phone_number_id, platform_message_id)

    def save_report(self, before: Message, after: Message) -> bool:
        return self.inner.save_report(before, after)


class LocksWithReleaseHook(InMemoryLocks):
    """InMemoryLocks that run a hook once, just before a lock is released: the moment at which a
    message can arrive, find the scope locked and have its trigger turned away."""

    def __init__(self) -> None:
        super().__init__()
        self.before_next_release: deque[Callable[[], object]] = deque()

    def release(self, key: str, token: int) -> None:
        if self.before_next_release:
            self.before_next_release.popleft()()
        super().release(key, token)


@define
class HookedClock(FixedClock):
    """A FixedClock whose `sleep` can also run a hook: something that happens while the worker waits."""

    during_next_sleep: deque[Callable[[], object]] = field(factory=deque)

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.during_next_sleep:
            self.during_next_sleep.popleft()()
