"""The composition root: which adapter serves which port, in the web app and in the workers.

With DATABASE_URL/REDIS_URL set the container wires Postgres, Redis and RQ; without them (embedded
dev mode) it wires the in-memory adapters. With OFFLINE_RESPONDER (dev mode's default without an
OPENAI_API_KEY; an explicit opt-in anywhere else) the labelled offline responder answers instead of OpenAI.
Nothing connects at import time: pools and clients are Resources opened by `init_resources()`
(after gunicorn or the worker supervisor has forked) and closed by `shutdown_resources()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import redis
from dependency_injector import containers, providers
from psycopg_pool import ConnectionPool

from adapters.circuit import Circuit, InMemoryCircuitBoard, RedisCircuitBoard
from adapters.crypto import FernetTokenCipher
from adapters.io_counts import IoCounts
from adapters.memory.message_store import InMemoryMessageStore
from adapters.memory.rejected_deliveries import InMemoryRejectedDeliveries
from adapters.memory.services import (
    InMemoryBackgroundJobs,
    InMemoryBalanceCache,
    InMemoryJobQueue,
    InMemoryLocks,
    InMemoryRouteCache,
    RandomIds,
    RecordingSender,
    SystemClock,
)
from adapters.memory.tables import InMemoryStore
from adapters.memory.turn_store import InMemoryTurnStore
from adapters.memory.unit_of_work import InMemoryUnitOfWork
from adapters.meta.instagram import InstagramSender
from adapters.meta.senders import SendersByType
from adapters.meta.whatsapp import WhatsAppCloudSender, graph_outage
from adapters.openai.extractor import OpenAIExtractor
from adapters.openai.offline import OfflineExtractor, OfflineResponder
from adapters.openai.responder import OpenAIResponder
from adapters.openai.responder import is_outage as openai_outage
from adapters.postgres.channel_tokens import PostgresChannelTokens
from adapters.postgres.message_store import PostgresMessageStore
from adapters.postgres.pool import open_pool
from adapters.postgres.rejected_deliveries import PostgresRejectedDeliveries
from adapters.postgres.turn_store import PostgresTurnStore
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from adapters.redis.cache import RedisBalanceCache, RedisRouteCache
from adapters.redis.client import redis_client
from adapters.redis.locks import RedisLocks
from adapters.redis.near_cache import NearRouteCache
from adapters.rq.background import RqBackgroundJobs
from adapters.rq.queue import RqJobQueue
from adapters.webchat.rate_limits import WindowRateLimits
from adapters.webchat.sender import WebchatSender
from adapters.webchat.signals import InProcessSignals, RedisSignals
from adapters.webchat.tokens import SignedVisitorTokens
from adapters.webhooks.sender import RequestsWebhookSender
from application.notifying import Notifier, ScheduleWebhookDeliveries
from application.reply_delivery import ReplyDelivery
from application.routes import ChannelRoutes
from application.use_cases.add_channel import AddChannel
from application.use_cases.apply_customer_deletion import ApplyCustomerDeletion
from application.use_cases.apply_delivery_report import ApplyDeliveryReport
from application.use_cases.authenticate import Authenticate
from application.use_cases.configure_webhook import ConfigureWebhook
from application.use_cases.control_conversation_bot import ControlConversationBot
from application.use_cases.create_agent import CreateAgent
from application.use_cases.create_user import CreateUser
from application.use_cases.delete_agent import DeleteAgent
from application.use_cases.delete_channel import DeleteChannel
from application.use_cases.deliver_webhook import DeliverWebhook
from application.use_cases.extract_lead import ExtractLead
from application.use_cases.handle_inbound_message import HandleInboundMessage
from application.use_cases.lead_queries import LeadQueries
from application.use_cases.manage_notifications import ManageNotifications
from application.use_cases.notify_account_events import NotifyAccountEvents
from application.use_cases.process_pending_messages import ProcessPendingMessages, TurnPolicy
from application.use_cases.read_visitor_timeline import ReadVisitorTimeline
from application.use_cases.record_business_echo import RecordBusinessEcho
from application.use_cases.recover_stalled_work import RecoverStalledWork
from application.use_cases.reject_delivery import RejectDelivery
from application.use_cases.relink_agent import RelinkAgent
from application.use_cases.resume_ended_pauses import ResumeEndedPauses
from application.use_cases.retry_message import RetryMessage
from application.use_cases.schedule_extractions import ScheduleExtractions
from application.use_cases.send_human_reply import SendHumanReply
from application.use_cases.send_visitor_message import SendVisitorMessage
from application.use_cases.start_visitor_session import StartVisitorSession
from application.use_cases.tenant_queries import TenantQueries
from application.use_cases.top_up_credits import TopUpCredits
from application.use_cases.update_channel import UpdateChannel
from application.webchat_access import WidgetAccess
from domain.channels import ChannelType
from entrypoints.settings import Settings

JOB_FUNCTION = "entrypoints.worker.jobs.drain_scopes"


def _postgres_pool(settings: Settings, io_counts: IoCounts | None) -> Iterator[ConnectionPool | None]:
    if settings.database_url is None:
        yield None
        return
    pool = open_pool(
        settings.database_url, settings.database_pool_size, settings.database_timeout_ms / 1000, io_counts=io_counts
    )
    try:
        yield pool
    finally:
        pool.close()


def _redis(settings: Settings, io_counts: IoCounts | None) -> Iterator[redis.Redis | None]:
    if settings.redis_url is None:
        yield None
        return
    # Short timeouts: a cache or lock call that waits long on a sick Redis hurts more than a miss.
    client = redis_client(settings.redis_url, socket_timeout_s=2.0, io_counts=io_counts)
    try:
        yield client
    finally:
        client.close()


def _patience(settings: Settings) -> timedelta | None:
    return timedelta(milliseconds=settings.upstream_patience_ms) if settings.upstream_patience_ms else None


def _mode(settings: Settings) -> str:
    return "embedded" if settings.embedded else "production"


def _ai_mode(settings: Settings) -> str:
    return "offline" if settings.offline_responder else "openai"


def _senders(whatsapp: WhatsAppCloudSender, instagram: InstagramSender, webchat: WebchatSender) -> SendersByType:
    return SendersByType(
        {ChannelType.WHATSAPP: whatsapp, ChannelType.INSTAGRAM: instagram, ChannelType.WEBCHAT: webchat}
    )


def _recording_senders(sender: RecordingSender, webchat: WebchatSender) -> SendersByType:
    """Dev mode: Meta's channels recorded (there is no Meta account), web chat for real (it is ours)."""
    return SendersByType({ChannelType.WHATSAPP: sender, ChannelType.INSTAGRAM: sender, ChannelType.WEBCHAT: webchat})


def _rate_limit_store(settings: Settings) -> str:
    return settings.redis_url or "memory://"


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    mode = providers.Callable(_mode, settings)
    # The process's IO_COUNTS counter (entrypoints/io_counting.py), given by the entry point; None: not counting.
    io_counts: providers.Object[IoCounts | None] = providers.Object(None)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)

    postgres_pool = providers.Resource(_postgres_pool, settings, io_counts)
    redis = providers.Resource(_redis, settings, io_counts)
    # Channel access tokens at rest, in PostgreSQL and the Redis route cache (in memory they stay clear).
    token_cipher = providers.Singleton(FernetTokenCipher, settings.provided.token_encryption_keys)
    channel_tokens = providers.Singleton(PostgresChannelTokens, postgres_pool, cipher=token_cipher)

    memory_store = providers.Singleton(InMemoryStore)
    memory_uow = providers.Factory(InMemoryUnitOfWork, memory_store)
    uow = providers.Selector(
        mode,
        embedded=memory_uow.provider,
        production=providers.Factory(PostgresUnitOfWork, postgres_pool, cipher=token_cipher).provider,
    )
    message_store = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryMessageStore, memory_store),
        production=providers.Singleton(PostgresMessageStore, postgres_pool),
    )
    turn_store = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryTurnStore, memory_store),
        production=providers.Singleton(PostgresTurnStore, postgres_pool),
    )
    queue = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryJobQueue),
        production=providers.Singleton(
            RqJobQueue,
            connection=redis,
            queue_name=settings.provided.queue_name,
            drain_function=JOB_FUNCTION,
            job_timeout_s=providers.Callable(
                lambda s: int((s.openai_timeout_ms * (s.openai_max_retries + 1)) / 1000) + 300, settings
            ),
        ),
    )
    locks = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryLocks),
        production=providers.Singleton(RedisLocks, redis, ttl_ms=settings.provided.lock_ttl_ms),
    )
    shared_route_cache = providers.Singleton(
        RedisRouteCache, redis, ttl_s=settings.provided.cache_ttl_s, cipher=token_cipher
    )
    route_cache = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryRouteCache),
        # Each process keeps what it read while it hears every change announced (adapters/redis/near_cache.py).
        production=providers.Singleton(NearRouteCache, shared_route_cache),
    )
    balance_cache = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryBalanceCache),
        production=providers.Singleton(RedisBalanceCache, redis, ttl_s=settings.provided.cache_ttl_s),
    )
    circuit_board = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryCircuitBoard),
        production=providers.Singleton(RedisCircuitBoard, redis),
    )
    openai_circuit = providers.Singleton(
        Circuit,
        "openai",
        failures=settings.provided.circuit_failures,
        reset_after_s=providers.Callable(lambda s: s.circuit_reset_ms / 1000, settings),
        is_outage=providers.Object(openai_outage),
        board=circuit_board,
    )
    graph_circuit = providers.Singleton(
        Circuit,
        "graph",
        failures=settings.provided.circuit_failures,
        reset_after_s=providers.Callable(lambda s: s.circuit_reset_ms / 1000, settings),
        is_outage=providers.Object(graph_outage),
        board=circuit_board,
    )
    # Instagram's Graph host (graph.instagram.com) is waited out apart from WhatsApp's (graph.facebook.com).
    instagram_circuit = providers.Singleton(
        Circuit,
        "instagram_graph",
        failures=settings.provided.circuit_failures,
        reset_after_s=providers.Callable(lambda s: s.circuit_reset_ms / 1000, settings),
        is_outage=providers.Object(graph_outage),
        board=circuit_board,
    )
    ai = providers.Selector(
        providers.Callable(_ai_mode, settings),
        offline=providers.Singleton(OfflineResponder),
        openai=providers.Singleton(
            OpenAIResponder,
            api_key=settings.provided.openai_api_key,
            base_url=settings.provided.openai_base_url,
            timeout_ms=settings.provided.openai_timeout_ms,
            max_retries=settings.provided.openai_max_retries,
            backoff_base_ms=settings.provided.openai_backoff_ms,
            circuit=openai_circuit,
        ),
    )
    whatsapp_sender = providers.Singleton(
        WhatsAppCloudSender,
        base_url=settings.provided.whatsapp_api_base_url,
        timeout_ms=settings.provided.graph_timeout_ms,
        connections=settings.provided.worker_threads,
        circuit=graph_circuit,
    )
    instagram_sender = providers.Singleton(
        InstagramSender,
        base_url=settings.provided.instagram_api_base_url,
        timeout_ms=settings.provided.graph_timeout_ms,
        connections=settings.provided.worker_threads,
        circuit=instagram_circuit,
    )
    # Web chat: replies reach open widgets through signals (Redis pub/sub between processes).
    visitor_signals = providers.Selector(
        mode,
        embedded=providers.Singleton(InProcessSignals),
        production=providers.Singleton(RedisSignals, redis, settings.provided.redis_url, io_counts=io_counts),
    )
    webchat_sender = providers.Singleton(WebchatSender, visitor_signals, ids)
    # Embedded dev mode has no Meta account: replies are recorded (and shown on the dev page) instead.
    recording_sender = providers.Singleton(RecordingSender)
    senders = providers.Selector(
        mode,
        embedded=providers.Singleton(_recording_senders, recording_sender, webchat_sender),
        production=providers.Singleton(_senders, whatsapp_sender, instagram_sender, webchat_sender),
    )

    routes = providers.Singleton(ChannelRoutes, uow, route_cache)

    authenticate = providers.Singleton(Authenticate, uow, admin_api_key=settings.provided.admin_api_key)
    create_user = providers.Singleton(CreateUser, uow, ids, clock)
    add_channel = providers.Singleton(AddChannel, uow, routes, ids, clock)
    create_agent = providers.Singleton(CreateAgent, uow, routes, ids, clock)
    top_up_credits = providers.Singleton(TopUpCredits, uow, balance_cache, clock)
    tenant_queries = providers.Singleton(TenantQueries, uow, balance_cache)
    lead_queries = providers.Singleton(LeadQueries, uow)
    manage_notifications = providers.Singleton(ManageNotifications, uow, clock)
    configure_webhook = providers.Singleton(ConfigureWebhook, uow, ids, clock)
    relink_agent = providers.Singleton(
        RelinkAgent, uow, routes, queue, clock, ordering=settings.provided.ordering_scope
    )
    delete_agent = providers.Singleton(
        DeleteAgent, uow, routes, queue, clock, ordering=settings.provided.ordering_scope
    )
    delete_channel = providers.Singleton(
        DeleteChannel, uow, routes, queue, clock, ordering=settings.provided.ordering_scope
    )

    rejected_deliveries = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryRejectedDeliveries),
        production=providers.Singleton(PostgresRejectedDeliveries, postgres_pool),
    )
    reject_delivery = providers.Singleton(RejectDelivery, rejected_deliveries, clock)
    handle_inbound_message = providers.Singleton(
        HandleInboundMessage,
        message_store,
        routes,
        queue,
        clock,
        reject_delivery,
        ordering=settings.provided.ordering_scope,
    )
    apply_delivery_report = providers.Singleton(ApplyDeliveryReport, message_store, clock)
    record_business_echo = providers.Singleton(RecordBusinessEcho, message_store, routes, clock, reject_delivery)
    apply_customer_deletion = providers.Singleton(ApplyCustomerDeletion, message_store, clock)
    turn_policy = providers.Singleton(
        TurnPolicy,
        credits_per_turn=settings.provided.credits_per_reply,
        coalesce_window=providers.Callable(lambda s: timedelta(milliseconds=s.coalesce_window_ms), settings),
        mark_as_read=settings.provided.mark_as_read,
        typing_indicator=settings.provided.typing_indicator,
        patience=providers.Callable(_patience, settings),
    )
    reply_delivery = providers.Singleton(ReplyDelivery, turn_store, senders, clock)
    process_pending_messages = providers.Singleton(
        ProcessPendingMessages, turn_store, locks, routes, ai, reply_delivery, balance_cache, clock, turn_policy
    )
    retry_message = providers.Singleton(
        RetryMessage,
        uow,
        message_store,
        turn_store,
        routes,
        senders,
        queue,
        clock,
        ordering=settings.provided.ordering_scope,
    )
    recover_stalled_work = providers.Singleton(
        RecoverStalledWork,
        turn_store,
        queue,
        locks,
        clock,
        ordering=settings.provided.ordering_scope,
        stalled_after=providers.Callable(lambda s: timedelta(milliseconds=s.recovery_after_ms), settings),
    )
    update_channel = providers.Singleton(
        UpdateChannel, uow, routes, queue, clock, ordering=settings.provided.ordering_scope
    )
    control_conversation_bot = providers.Singleton(
        ControlConversationBot, uow, queue, clock, ordering=settings.provided.ordering_scope
    )
    send_human_reply = providers.Singleton(SendHumanReply, uow, turn_store, senders, clock)
    visitor_tokens = providers.Singleton(SignedVisitorTokens, settings.provided.token_encryption_keys)
    rate_limits = providers.Singleton(
        WindowRateLimits, providers.Callable(_rate_limit_store, settings), io_counts=io_counts
    )
    widget_access = providers.Singleton(WidgetAccess, routes, visitor_tokens, clock)
    start_visitor_session = providers.Singleton(
        StartVisitorSession,
        widget_access,
        visitor_tokens,
        rate_limits,
        ids,
        clock,
        widget_per_minute=settings.provided.webchat_widget_per_minute,
    )
    send_visitor_message = providers.Singleton(
        SendVisitorMessage,
        widget_access,
        handle_inbound_message,
        message_store,
        rate_limits,
        visitor_signals,
        clock,
        visitor_per_minute=settings.provided.webchat_visitor_per_minute,
        widget_per_minute=settings.provided.webchat_widget_per_minute,
    )
    read_visitor_timeline = providers.Singleton(ReadVisitorTimeline, uow)
    resume_ended_pauses = providers.Singleton(
        ResumeEndedPauses, turn_store, uow, queue, clock, ordering=settings.provided.ordering_scope
    )

    # Lead extraction and notifications: background work, on a queue of its own.
    background_jobs = providers.Selector(
        mode,
        embedded=providers.Singleton(InMemoryBackgroundJobs),
        production=providers.Singleton(
            RqBackgroundJobs,
            connection=redis,
            queue_name=settings.provided.queue_name,
            job_timeout_s=providers.Callable(
                lambda s: int((s.openai_timeout_ms * (s.openai_max_retries + 1)) / 1000) + 300, settings
            ),
        ),
    )
    # Its own circuit: extraction throttled or refused (another model, its own limits) must not stop replies.
    extraction_circuit = providers.Singleton(
        Circuit,
        "openai_extraction",
        failures=settings.provided.circuit_failures,
        reset_after_s=providers.Callable(lambda s: s.circuit_reset_ms / 1000, settings),
        is_outage=providers.Object(openai_outage),
        board=circuit_board,
    )
    extractor = providers.Selector(
        providers.Callable(_ai_mode, settings),
        offline=providers.Singleton(OfflineExtractor),
        openai=providers.Singleton(
            OpenAIExtractor,
            api_key=settings.provided.openai_api_key,
            base_url=settings.provided.openai_base_url,
            timeout_ms=settings.provided.openai_timeout_ms,
            max_retries=settings.provided.openai_max_retries,
            backoff_base_ms=settings.provided.openai_backoff_ms,
            circuit=extraction_circuit,
            model=settings.provided.extraction_model,
        ),
    )
    webhook_sender = providers.Singleton(
        RequestsWebhookSender,
        timeout_ms=settings.provided.outgoing_webhook_timeout_ms,
        allow_private=settings.provided.outgoing_webhook_allow_private,
    )
    notifier = providers.Singleton(Notifier, ids)
    schedule_webhook_deliveries = providers.Singleton(ScheduleWebhookDeliveries, uow, background_jobs, clock)
    deliver_webhook = providers.Singleton(
        DeliverWebhook,
        uow,
        webhook_sender,
        clock,
        first_retry=providers.Callable(lambda s: timedelta(milliseconds=s.outgoing_webhook_retry_ms), settings),
    )
    schedule_extractions = providers.Singleton(
        ScheduleExtractions,
        uow,
        background_jobs,
        clock,
        interval=providers.Callable(lambda s: timedelta(milliseconds=s.extraction_interval_ms), settings),
    )
    extract_lead = providers.Singleton(
        ExtractLead,
        uow,
        extractor,
        locks,
        notifier,
        schedule_webhook_deliveries,
        balance_cache,
        clock,
        credits_per_extraction=settings.provided.credits_per_extraction,
    )
    notify_account_events = providers.Singleton(NotifyAccountEvents, uow, notifier, schedule_webhook_deliveries, clock)


def build_container(settings: Settings, io_counts: IoCounts | None = None) -> Container:
    container = Container(settings=settings, io_counts=io_counts)
    return container
