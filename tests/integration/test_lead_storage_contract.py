"""The storage contract of lead extraction, notifications and outgoing webhooks, run against the in-memory
and the PostgreSQL adapters (as `test_repository_contract.py` runs the rest): which conversations are due
and claimed once, extractions kept as history with the latest per conversation listed and filtered, a
demo time read back in the customer's offset, the transcript the AI reads; notifications told once per
key, unread first, and the facts the sweep decides from; webhook endpoints (the secret encrypted at
rest), deliveries claimed once and their attempts logged; the ledger naming an extraction's charge; an
agent's extraction prompt kept.

Tests of what only a database can get wrong — two sweepers on two connections at once — run on
PostgreSQL alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from attrs import evolve, frozen

from adapters.memory.message_store import InMemoryMessageStore
from adapters.memory.tables import InMemoryStore
from adapters.memory.turn_store import InMemoryTurnStore
from adapters.memory.unit_of_work import InMemoryUnitOfWork
from adapters.postgres.message_store import PostgresMessageStore
from adapters.postgres.pool import open_pool
from adapters.postgres.turn_store import PostgresTurnStore
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from application.ports.lead_storage import (
    DeliveryQuery,
    ExtractionQuery,
    LoggedDelivery,
    NotificationCursor,
    NotificationQuery,
)
from application.relinking import save_relink
from domain.channels import ChannelType
from domain.credits import CreditMovement, LedgerKind
from domain.extraction import MAX_ATTEMPTS, Extraction, LeadActivity, LeadFields, TranscriptLine
from domain.messages import BusinessEcho
from domain.notifications import (
    DEFAULT_CREDITS_LOW_AT,
    BalanceFacts,
    NewNotification,
    Notification,
    NotificationKind,
    NotificationSettings,
    SendFailures,
    WaitingConversation,
)
from domain.relink import relink
from domain.tenancy import Route
from domain.turns import Reply, Turn, TurnHeld, TurnRefused
from domain.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.integration.test_repository_contract import (
    Storage,
    _answer,
    _record,
    _scope,
    _seed,
    _SqlPeek,
    _start,
    _TablesPeek,
    _top_up,
    _work,
)
from tests.support.postgres import NOW, a_channel, a_user, an_agent, minutes
from tests.support.secrets import TEST_CIPHER

#: The extraction interval of these tests: a conversation quiet since QUIET_BEFORE is due at SWEEP.
SWEEP = NOW + minutes(30)
INTERVAL = minutes(10)
QUIET_BEFORE = SWEEP - INTERVAL
PARIS_WINTER = timezone(timedelta(hours=1))
NEWFOUNDLAND = timezone(timedelta(hours=-3, minutes=-30))
#: How long a sender holds the deliveries it claimed, in these tests.
HOLD = timedelta(minutes=2)


@frozen
class Leads:
    storage: Storage
    #: PostgreSQL's URL, to read a column as stored; None on the in-memory adapters.
    database_url: str | None = None


@pytest.fixture(params=["memory", "postgres"])
def leads(request: pytest.FixtureRequest) -> Iterator[Leads]:
    if request.param == "memory":
        store = InMemoryStore()
        yield Leads(
            Storage(
                lambda: InMemoryUnitOfWork(store),
                InMemoryMessageStore(store),
                InMemoryTurnStore(store),
                _TablesPeek(store),
            )
        )
        return
    url = request.getfixturevalue("clean_database")
    pool = open_pool(url, size=6, timeout_s=10)
    try:
        yield Leads(
            Storage(
                lambda: PostgresUnitOfWork(pool, cipher=TEST_CIPHER),
                PostgresMessageStore(pool),
                PostgresTurnStore(pool),
                _SqlPeek(url),
            ),
            url,
        )
    finally:
        pool.close()


@pytest.fixture
def postgres(clean_database: str) -> Iterator[Storage]:
    pool = open_pool(clean_database, size=6, timeout_s=10)
    try:
        yield Storage(
            lambda: PostgresUnitOfWork(pool, cipher=TEST_CIPHER),
            PostgresMessageStore(pool),
            PostgresTurnStore(pool),
            _SqlPeek(clean_database),
        )
    finally:
        pool.close()


# --- builders ------------------------------------------------------------------------------------


def _writes(storage: Storage, route: Route, customer: str, at: datetime, text: str | None = "hello") -> int:
    """The customer writes at `at`; the conversation's id."""
    platform_id = f"wamid.{route.channel.phone_number_id}.{customer}.{at.isoformat()}"
    return _record(storage, route, platform_id, now=at, customer_id=customer, text=text).conversation_id


def _change_activity(storage: Storage, conversation_id: int, change: Callable[[LeadActivity], LeadActivity]) -> None:
    with storage.uow() as uow:
        activity = uow.extractions.activity(conversation_id)
        assert activity is not None
        uow.extractions.save_activity(change(activity))
        uow.commit()


def _claim(storage: Storage, *, now: datetime = SWEEP, limit: int = 50) -> list[int]:
    with storage.uow() as uow:
        claimed = uow.extractions.claim_due(now - INTERVAL, now, now + minutes(10), limit)
        uow.commit()
    return claimed


def _reading(
    conversation_id: int,
    through: int = 1,
    *,
    at: datetime = NOW,
    user_id: str = "user-1",
    phone_number_id: str = "pn-1",
    **fields: object,
) -> Extraction:
    return Extraction(None, user_id, conversation_id, phone_number_id, through, LeadFields(**fields), at)  # type: ignore[arg-type]


def _add(storage: Storage, extraction: Extraction) -> Extraction:
    with storage.uow() as uow:
        stored = uow.extractions.add(extraction)
        uow.commit()
    assert stored is not None and stored.extraction_id is not None
    return stored


def _latest_ids(storage: Storage, user_id: str = "user-1", **query: object) -> list[int | None]:
    with storage.uow() as uow:
        page = uow.extractions.list_latest(user_id, ExtractionQuery(**query))  # type: ignore[arg-type]
    return [e.extraction_id for e in page.items]


def _seed_instagram(storage: Storage, phone_number_id: str = "ig-1") -> Route:
    channel = evolve(a_channel("user-1", phone_number_id), type=ChannelType.INSTAGRAM)
    agent = an_agent("user-1", phone_number_id)
    with storage.uow() as uow:
        uow.channels.add(channel)
        uow.agents.add(agent)
        uow.commit()
    return Route(channel=channel, agent=agent)


def _refused(storage: Storage, route: Route, customer: str, at: datetime, *, cost: int = 1) -> int:
    """A customer's message left unanswered for want of credits; its id."""
    recorded = _record(storage, route, f"wamid.refused.{customer}", now=at, customer_id=customer)
    work = _work(storage, _scope(recorded.conversation_id))
    refused = Turn.start(work.conversation, work.messages, route, work.credits, cost, at)
    assert isinstance(refused, TurnRefused) and refused.reason == "insufficient_credits", refused
    storage.turns.refuse(refused)
    return recorded.message_id


def _failed_send(storage: Storage, route: Route, customer: str, code: str | None, at: datetime) -> int:
    """A one-part reply whose send failed at `at` with the channel's `code`; the part's id."""
    _top_up(storage.uow, 1, route.user_id)
    recorded = _record(storage, route, f"wamid.in.{customer}", now=at, customer_id=customer)
    answered = _answer(storage, _start(storage, route, _scope(recorded.conversation_id)), "hi", now=at)
    parts = storage.turns.answer(answered)
    assert parts is not None
    [part] = parts
    _, change = Reply(answered.turn, parts, frozenset({part.message_id})).outcome(
        part.undeliverable(code, "the channel refused it", at), at
    )
    assert storage.turns.save_part(change)
    return part.message_id


def _notice(
    key: str,
    at: datetime = NOW,
    *,
    user_id: str = "user-1",
    kind: NotificationKind = NotificationKind.HOT_LEAD,
    conversation_id: int | None = None,
) -> NewNotification:
    return NewNotification(user_id, kind, f"about {key}", key, at, conversation_id, "pn-1", {"key": key, "n": [1]})


def _notify(storage: Storage, new: NewNotification) -> Notification:
    with storage.uow() as uow:
        stored = uow.notifications.add(new)
        uow.commit()
    assert stored is not None
    return stored


def _notification_ids(storage: Storage, user_id: str = "user-1", **query: object) -> list[int]:
    with storage.uow() as uow:
        page = uow.notifications.list(user_id, NotificationQuery(**query))  # type: ignore[arg-type]
    return [n.notification_id for n in page.items]


def _mark(storage: Storage, notification: Notification, *, read: bool, at: datetime = NOW) -> Notification:
    marked = notification.mark(read=read, now=at)
    with storage.uow() as uow:
        uow.notifications.save_read(marked)
        uow.commit()
    return marked


def _deliver_to(storage: Storage, notification: Notification, event_id: str, at: datetime = NOW) -> WebhookDelivery:
    first = WebhookDelivery.first(
        notification.user_id, notification.notification_id, event_id, "https://crm.example.com/hook", at
    )
    with storage.uow() as uow:
        stored = uow.webhooks.add_delivery(first)
        uow.commit()
    assert stored.delivery_id is not None
    return stored


def _claim_deliveries(storage: Storage, now: datetime, *, hold: timedelta = HOLD) -> list[int]:
    with storage.uow() as uow:
        claimed = uow.webhooks.claim_due(now, now + hold, 50)
        uow.commit()
    return claimed


def _attempt(storage: Storage, delivery_id: int, attempt: WebhookAttempt, *, accepted: bool) -> WebhookDelivery:
    with storage.uow() as uow:
        delivery = uow.webhooks.delivery(delivery_id)
        assert delivery is not None
        after = delivery.answered(attempt, accepted)
        uow.webhooks.save_attempt(after, attempt)
        uow.commit()
    return after


def _raw(database_url: str, query: str, *params: object) -> tuple[object, ...]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return tuple(row)


# --- which conversations are due ------------------------------------------------------------------


def test_only_conversations_due_are_claimed_the_longest_quiet_first(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    quiet_long = _writes(storage, route, "ann", NOW)
    quiet_since = _writes(storage, route, "bob", NOW + minutes(5))
    just_quiet = _writes(storage, route, "cid", QUIET_BEFORE)
    still_talking = _writes(storage, route, "dan", QUIET_BEFORE + timedelta(seconds=1))
    read_already = _writes(storage, route, "eve", NOW)
    _change_activity(storage, read_already, lambda a: a.extracted(1))
    wrote_again = _writes(storage, route, "fay", NOW)
    _change_activity(storage, wrote_again, lambda a: a.extracted(1))
    _writes(storage, route, "fay", NOW + minutes(1))
    held_by_worker = _writes(storage, route, "gus", NOW)
    _change_activity(storage, held_by_worker, lambda a: evolve(a, claimed_until=SWEEP + minutes(1)))
    hold_ran_out = _writes(storage, route, "hal", NOW)
    _change_activity(storage, hold_ran_out, lambda a: evolve(a, claimed_until=SWEEP))
    given_up = _writes(storage, route, "ivy", NOW)
    _change_activity(storage, given_up, lambda a: evolve(a, attempts=MAX_ATTEMPTS))
    retrying = _writes(storage, route, "jon", NOW)
    _change_activity(storage, retrying, lambda a: evolve(a, attempts=MAX_ATTEMPTS - 1, last_failure="timed out"))

    claimed = _claim(storage)

    assert claimed == [quiet_long, hold_ran_out, retrying, wrote_again, quiet_since, just_quiet]
    assert still_talking not in claimed
    with storage.uow() as uow:
        activity = uow.extractions.activity(quiet_long)
    assert activity == LeadActivity(
        quiet_long, "user-1", "pn-1", "agent-pn-1", NOW, 1, claimed_until=SWEEP + minutes(10)
    )


def test_a_claimed_conversation_is_not_claimed_again_until_its_claim_runs_out(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    first = _writes(storage, route, "ann", NOW)
    second = _writes(storage, route, "bob", NOW + minutes(1))

    assert _claim(storage, limit=1) == [first]
    assert _claim(storage, limit=1) == [second]
    assert _claim(storage) == []
    assert _claim(storage, now=SWEEP + minutes(10)) == [first, second]


def test_an_extraction_saved_as_done_leaves_the_conversation_until_the_customer_writes_again(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    conversation_id = _writes(storage, route, "ann", NOW)
    [claimed] = _claim(storage)
    _change_activity(storage, claimed, lambda a: a.extracted(1))

    assert _claim(storage, now=SWEEP + minutes(20)) == []
    _writes(storage, route, "ann", NOW + minutes(40))
    assert _claim(storage, now=NOW + minutes(50)) == [conversation_id]
    with storage.uow() as uow:
        activity = uow.extractions.activity(conversation_id)
    assert activity is not None
    assert (activity.extracted_through, activity.last_sequence_no, activity.attempts) == (1, 2, 0)


def test_a_failure_is_kept_with_its_reason_and_retried_once_its_wait_is_over(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    conversation_id = _writes(storage, route, "ann", NOW)
    _claim(storage)
    _change_activity(
        storage,
        conversation_id,
        lambda a: a.failed("OpenAI timed out", SWEEP, retryable=True, through=a.last_sequence_no),
    )

    with storage.uow() as uow:
        failed = uow.extractions.activity(conversation_id)
    assert failed is not None
    assert (failed.attempts, failed.last_failure, failed.claimed_until) == (1, "OpenAI timed out", SWEEP + minutes(1))
    assert _claim(storage, now=SWEEP + timedelta(seconds=59)) == []
    assert _claim(storage, now=SWEEP + minutes(1)) == [conversation_id]


def test_an_unknown_conversation_has_no_activity(leads: Leads) -> None:
    with leads.storage.uow() as uow:
        assert uow.extractions.activity(404) is None


def _claim_at_once(storage: Storage, claim: Callable[[PostgresUnitOfWork], list[int]]) -> list[list[int]]:
    """Two sweepers, each on its own connection, claim while the other's claim is not committed yet."""
    both_claiming, both_claimed = threading.Barrier(2, timeout=10), threading.Barrier(2, timeout=10)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            with storage.uow() as uow:
                assert isinstance(uow, PostgresUnitOfWork)
                uow.users.get("nobody")  # the transaction is open before either claims
                both_claiming.wait()
                claimed = claim(uow)
                both_claimed.wait()
                uow.commit()
            results.append(claimed)
        except BaseException as error:
            errors.append(error)

    sweepers = [threading.Thread(target=sweep) for _ in range(2)]
    for sweeper in sweepers:
        sweeper.start()
    for sweeper in sweepers:
        sweeper.join(timeout=20)
    assert not errors, errors
    return results


def test_two_sweepers_at_once_never_claim_the_same_conversation(postgres: Storage) -> None:
    route = _seed(postgres.uow)
    due = {_writes(postgres, route, f"customer-{n}", NOW + timedelta(seconds=n)) for n in range(30)}

    first, second = _claim_at_once(
        postgres, lambda uow: uow.extractions.claim_due(QUIET_BEFORE, SWEEP, SWEEP + minutes(10), 20)
    )

    assert not set(first) & set(second)
    assert set(first) | set(second) == due
    assert max(len(first), len(second)) == 20


# --- extractions -----------------------------------------------------------------------------------


def test_an_extraction_is_stored_once_per_conversation_and_last_message_read(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    conversation_id = _writes(storage, route, "ann", NOW)
    reading = _reading(conversation_id, 1, name="Ann", urgency=2, missing={"email": "not stated in the conversation"})

    stored = _add(storage, reading)
    with storage.uow() as uow:
        again = uow.extractions.add(evolve(reading, fields=LeadFields(name="Someone else")))
        uow.commit()

    assert stored == evolve(reading, extraction_id=stored.extraction_id)
    assert again is None
    with storage.uow() as uow:
        assert uow.extractions.latest(conversation_id) == stored


def test_every_field_of_an_extraction_reads_back_as_stored(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    conversation_id = _writes(storage, route, "ann", NOW)
    fields = LeadFields(
        name="Ann Lee",
        email="ann@example.com",
        company="Acme",
        intent="pricing for 20 seats",
        urgency=3,
        budget=2,
        fit=3,
        engagement=1,
        demo_datetime=datetime(2025, 3, 4, 15, 0, tzinfo=PARIS_WINTER),
        smart_notification="Ann asked for a quote by Friday",
        missing={},
    )
    reading = evolve(
        _reading(conversation_id, 1),
        fields=fields,
        credits_charged=2,
        response_id="resp_9",
        input_tokens=812,
        output_tokens=64,
    )

    stored = _add(storage, reading)

    with storage.uow() as uow:
        assert uow.extractions.latest(conversation_id) == stored
        assert uow.extractions.history("user-1", conversation_id, None, 10).items == [stored]
    assert stored.fields == fields


@pytest.mark.parametrize("zone", [PARIS_WINTER, NEWFOUNDLAND, UTC], ids=["+01:00", "-03:30", "UTC"])
def test_a_demo_time_reads_back_in_the_customers_own_offset(leads: Leads, zone: timezone) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    conversation_id = _writes(storage, route, "ann", NOW)
    demo = datetime(2025, 3, 4, 15, 0, tzinfo=zone)

    stored = _add(storage, _reading(conversation_id, demo_datetime=demo))
    with storage.uow() as uow:
        read_back = [
            uow.extractions.latest(conversation_id),
            *uow.extractions.history("user-1", conversation_id, None, 10).items,
            *uow.extractions.list_latest("user-1", ExtractionQuery()).items,
        ]

    for extraction in [stored, *read_back]:
        assert extraction is not None
        when = extraction.fields.demo_datetime
        assert when == demo
        assert when is not None and when.utcoffset() == demo.utcoffset()
        assert when.isoformat() == demo.isoformat()


def test_the_history_is_newest_first_page_by_page_and_only_the_users(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    conversation_id = _writes(storage, route, "ann", NOW)
    other = _writes(storage, route, "bob", NOW)
    readings = [_add(storage, _reading(conversation_id, n, at=NOW + minutes(n))) for n in (1, 2, 3)]
    _add(storage, _reading(other, 1))

    with storage.uow() as uow:
        first = uow.extractions.history("user-1", conversation_id, None, 2)
        rest = uow.extractions.history("user-1", conversation_id, first.next_cursor, 2)
        of_someone_else = uow.extractions.history("user-2", conversation_id, None, 10)
        latest = uow.extractions.latest(conversation_id)
        never_read = uow.extractions.latest(_writes(storage, route, "cid", NOW))

    assert list(first.items) == [readings[2], readings[1]]
    assert first.next_cursor == readings[1].extraction_id
    assert (list(rest.items), rest.next_cursor) == ([readings[0]], None)
    assert (list(of_someone_else.items), of_someone_else.next_cursor) == ([], None)
    assert latest == readings[2]
    assert never_read is None


def test_the_listing_shows_each_conversations_latest_reading_filtered(leads: Leads) -> None:
    storage = leads.storage
    whatsapp = _seed(storage.uow)
    instagram = _seed_instagram(storage)
    other_tenant = _seed(storage.uow, "user-2", "pn-2")
    ann = _writes(storage, whatsapp, "ann", NOW)
    bob = _writes(storage, whatsapp, "bob", NOW)
    cid = _writes(storage, instagram, "cid", NOW)
    dan = _writes(storage, other_tenant, "dan", NOW)
    ann_hot_once = _add(storage, _reading(ann, 1, urgency=3, fit=3, at=NOW))
    ann_latest = _add(storage, _reading(ann, 2, urgency=1, demo_datetime=NOW + timedelta(days=2), at=NOW + minutes(10)))
    bob_latest = _add(storage, _reading(bob, 1, urgency=3, budget=2, fit=2, engagement=3, at=NOW + minutes(5)))
    cid_latest = _add(storage, _reading(cid, 1, phone_number_id="ig-1", urgency=2, at=NOW + minutes(20)))
    dan_latest = _add(storage, _reading(dan, 1, user_id="user-2", phone_number_id="pn-2", urgency=3, at=NOW))
    ids = {e.extraction_id: e for e in (ann_hot_once, ann_latest, bob_latest, cid_latest, dan_latest)}
    a, b, c = ann_latest.extraction_id, bob_latest.extraction_id, cid_latest.extraction_id
    assert len(ids) == 5

    assert _latest_ids(storage) == [c, b, a]
    assert _latest_ids(storage, "user-2") == [dan_latest.extraction_id]
    assert _latest_ids(storage, channel=ChannelType.INSTAGRAM) == [c]
    assert _latest_ids(storage, channel=ChannelType.WHATSAPP) == [b, a]
    assert _latest_ids(storage, channel=ChannelType.WEBCHAT) == []
    assert _latest_ids(storage, phone_number_id="pn-1") == [b, a]
    assert _latest_ids(storage, phone_number_id="pn-2") == []
    # A minimum looks at the latest reading only: Ann was hot once, and is not now.
    assert _latest_ids(storage, min_urgency=3) == [b]
    assert _latest_ids(storage, min_urgency=2) == [c, b]
    assert _latest_ids(storage, min_fit=2) == [b]
    assert _latest_ids(storage, min_budget=2) == [b]
    assert _latest_ids(storage, min_engagement=3) == [b]
    assert _latest_ids(storage, min_engagement=3, channel=ChannelType.INSTAGRAM) == []
    assert _latest_ids(storage, has_demo=True) == [a]
    assert _latest_ids(storage, has_demo=False) == [c, b]
    assert _latest_ids(storage, since=NOW + minutes(10)) == [c, a]
    assert _latest_ids(storage, until=NOW + minutes(10)) == [b]
    assert _latest_ids(storage, since=NOW + minutes(5), until=NOW + minutes(20)) == [b, a]


def test_the_listing_cursor_walks_every_latest_reading_once(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    latest: list[int | None] = []
    for n in range(7):
        conversation_id = _writes(storage, route, f"customer-{n}", NOW)
        _add(storage, _reading(conversation_id, 1))
        if n % 2 == 0:
            latest.append(_add(storage, _reading(conversation_id, 2)).extraction_id)
        else:
            latest.append(_add(storage, _reading(conversation_id, 1 + 10)).extraction_id)

    seen: list[int | None] = []
    cursor = None
    pages = 0
    while True:
        with storage.uow() as uow:
            page = uow.extractions.list_latest("user-1", ExtractionQuery(cursor=cursor, limit=3))
        seen += [e.extraction_id for e in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == sorted(latest, key=lambda i: i or 0, reverse=True)
    assert pages == 3


def test_a_full_last_page_of_the_listing_has_no_next_cursor(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    for n in range(2):
        _add(storage, _reading(_writes(storage, route, f"customer-{n}", NOW)))

    with storage.uow() as uow:
        page = uow.extractions.list_latest("user-1", ExtractionQuery(limit=2))
    assert (len(page.items), page.next_cursor) == (2, None)


def test_the_transcript_is_the_conversations_texts_in_order_up_to_the_reading(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    _top_up(storage.uow, 10)
    first = _record(storage, route, "wamid.1", now=NOW, text="Hi, I'm Ann")
    conversation_id = first.conversation_id
    answered = _answer(storage, _start(storage, route, _scope(conversation_id)), "part one part two", now=NOW)
    assert storage.turns.answer(answered) is not None
    _record(storage, route, "wamid.photo", now=NOW + minutes(1), text=None, skip_reason="image")
    unsent = _record(storage, route, "wamid.unsent", now=NOW + minutes(2), text="call me at 555")
    before = storage.messages.inbound("pn-1", "wamid.unsent")
    assert before is not None
    after = before.deleted_by_customer(NOW + minutes(3))
    assert after is not None and storage.messages.save_deletion(before, after)
    echo = BusinessEcho("pn-1", "wamid.echo", "customer-1", "text", "A person here", NOW + minutes(4), {})
    person = storage.messages.record_echo(route, echo, NOW + minutes(4))
    _record(storage, route, "wamid.later", now=NOW + minutes(5), text="Are you there?")

    with storage.uow() as uow:
        lines = uow.extractions.transcript(conversation_id, person.sequence_no)

    assert unsent.sequence_no == 5
    assert lines == (
        TranscriptLine(1, NOW, "customer", "Hi, I'm Ann"),
        TranscriptLine(2, NOW, "ai", "part one"),
        TranscriptLine(3, NOW, "ai", "part two"),
        TranscriptLine(6, NOW + minutes(4), "human", "A person here"),
    )


# --- notifications ---------------------------------------------------------------------------------


def test_a_notification_is_told_once_per_user_and_key(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    conversation_id = _writes(storage, route, "ann", NOW)
    new = _notice("hot_lead:1:1", conversation_id=conversation_id)

    stored = _notify(storage, new)
    with storage.uow() as uow:
        again = uow.notifications.add(evolve(new, title="told twice?"))
        for_another_user = uow.notifications.add(_notice("hot_lead:1:1", user_id="user-2"))
        uow.commit()

    assert stored == Notification.stored(stored.notification_id, new)
    assert again is None
    assert for_another_user is not None
    with storage.uow() as uow:
        assert uow.notifications.get("user-1", stored.notification_id) == stored
        assert uow.notifications.get("user-2", stored.notification_id) is None


def test_notifications_are_listed_unread_first_each_newest_first_page_by_page(leads: Leads) -> None:
    storage = leads.storage
    _seed(storage.uow)
    stored = [_notify(storage, _notice(f"key-{n}", NOW + minutes(n))) for n in range(6)]
    for n in (1, 3, 4):
        _mark(storage, stored[n], read=True)
    ids = [n.notification_id for n in stored]
    expected = [ids[5], ids[2], ids[0], ids[4], ids[3], ids[1]]

    seen: list[int] = []
    cursors: list[NotificationCursor | None] = []
    cursor = None
    while True:
        with storage.uow() as uow:
            page = uow.notifications.list("user-1", NotificationQuery(cursor=cursor, limit=2))
        seen += [n.notification_id for n in page.items]
        cursor = page.next_cursor
        cursors.append(cursor)
        if cursor is None:
            break

    assert seen == expected
    assert cursors == [NotificationCursor(False, ids[2]), NotificationCursor(True, ids[4]), None]
    assert _notification_ids(storage, read=False, cursor=NotificationCursor(True, ids[4])) == []
    assert _notification_ids(storage, read=True, cursor=NotificationCursor(False, ids[2])) == [ids[4], ids[3], ids[1]]


def test_notifications_are_filtered_by_kind_read_conversation_and_time(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    ann = _writes(storage, route, "ann", NOW)
    hot = _notify(storage, _notice("a", NOW, conversation_id=ann))
    demo = _notify(storage, _notice("b", NOW + minutes(1), kind=NotificationKind.DEMO_BOOKED, conversation_id=ann))
    low = _notify(storage, _notice("c", NOW + minutes(2), kind=NotificationKind.CREDITS_LOW))
    _notify(storage, _notice("d", NOW, user_id="user-2"))
    _mark(storage, demo, read=True)
    h, d, lo = hot.notification_id, demo.notification_id, low.notification_id

    assert _notification_ids(storage) == [lo, h, d]
    assert _notification_ids(storage, kind=NotificationKind.DEMO_BOOKED) == [d]
    assert _notification_ids(storage, read=True) == [d]
    assert _notification_ids(storage, read=False) == [lo, h]
    assert _notification_ids(storage, conversation_id=ann) == [h, d]
    assert _notification_ids(storage, since=NOW + minutes(1)) == [lo, d]
    assert _notification_ids(storage, until=NOW + minutes(1)) == [h]
    assert _notification_ids(storage, kind=NotificationKind.HOT_LEAD, read=True) == []


def test_notifications_are_marked_read_unread_and_all_read_and_counted(leads: Leads) -> None:
    storage = leads.storage
    _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    first, second, third = (_notify(storage, _notice(f"key-{n}")) for n in range(3))
    _notify(storage, _notice("theirs", user_id="user-2"))

    def unread(user_id: str = "user-1") -> int:
        with storage.uow() as uow:
            return uow.notifications.unread_count(user_id)

    assert unread() == 3
    read = _mark(storage, first, read=True, at=NOW + minutes(1))
    assert unread() == 2
    with storage.uow() as uow:
        assert uow.notifications.get("user-1", first.notification_id) == read
    _mark(storage, read, read=False)
    assert unread() == 3
    _mark(storage, second, read=True, at=NOW + minutes(1))

    with storage.uow() as uow:
        marked = uow.notifications.mark_all_read("user-1", NOW + minutes(2))
        uow.commit()

    assert (marked, unread(), unread("user-2")) == (2, 0, 1)
    with storage.uow() as uow:
        stored = [uow.notifications.get("user-1", n.notification_id) for n in (first, second, third)]
    assert [n.read_at if n else None for n in stored] == [
        NOW + minutes(2),
        NOW + minutes(1),  # read before: its first reading is kept
        NOW + minutes(2),
    ]


def test_settings_are_the_defaults_until_saved_then_as_saved(leads: Leads) -> None:
    storage = leads.storage
    _seed(storage.uow)
    with storage.uow() as uow:
        assert uow.notifications.settings("user-1") == NotificationSettings("user-1")
    changed = NotificationSettings("user-1").change(hot_lead={"urgency": 2, "engagement": 3}, credits_low_at=5)
    again = changed.change(credits_low_at=7)

    with storage.uow() as uow:
        uow.notifications.save_settings(changed)
        uow.commit()
    with storage.uow() as uow:
        assert uow.notifications.settings("user-1") == changed
        uow.notifications.save_settings(again)
        uow.commit()
    with storage.uow() as uow:
        assert uow.notifications.settings("user-1") == again


def test_balances_to_check_are_low_accounts_and_those_that_left_messages_unanswered(leads: Leads) -> None:
    storage = leads.storage
    comfortable = _seed(storage.uow, "u1", "pn-u1")
    low = _seed(storage.uow, "u2", "pn-u2")
    _seed(storage.uow, "u3", "pn-u3")  # never credited, nothing refused: not news
    never_credited = _seed(storage.uow, "u4", "pn-u4")
    own_threshold = _seed(storage.uow, "u5", "pn-u5")
    topped_up_since = _seed(storage.uow, "u6", "pn-u6")
    refused_since = _seed(storage.uow, "u7", "pn-u7")
    _top_up(storage.uow, 100, comfortable.user_id)
    low_top_up = _top_up(storage.uow, DEFAULT_CREDITS_LOW_AT, low.user_id)
    _refused(storage, never_credited, "ann", NOW)
    _refused(storage, never_credited, "bob", NOW + minutes(1))
    own_top_up = _top_up(storage.uow, 100, own_threshold.user_id)
    with storage.uow() as uow:
        uow.notifications.save_settings(NotificationSettings("u5").change(credits_low_at=100))
        uow.commit()
    _refused(storage, topped_up_since, "ann", NOW - minutes(5))
    _top_up(storage.uow, 100, topped_up_since.user_id)
    _top_up(storage.uow, 1, refused_since.user_id)
    last_top_up = _top_up(storage.uow, 99, refused_since.user_id)
    _refused(storage, refused_since, "ann", NOW + minutes(5), cost=1000)

    with storage.uow() as uow:
        facts = uow.notifications.balances_to_check()

    assert facts == [
        BalanceFacts("u2", DEFAULT_CREDITS_LOW_AT, DEFAULT_CREDITS_LOW_AT, low_top_up.entry_id, 0),
        BalanceFacts("u4", 0, DEFAULT_CREDITS_LOW_AT, 0, 2),
        BalanceFacts("u5", 100, 100, own_top_up.entry_id, 0),
        BalanceFacts("u7", 100, DEFAULT_CREDITS_LOW_AT, last_top_up.entry_id, 1),
    ]


def test_send_failures_are_counted_per_channel_and_code_since_a_time(leads: Leads) -> None:
    storage = leads.storage
    pn1 = _seed(storage.uow)
    pn2 = _seed(storage.uow, "user-2", "pn-2")
    since = NOW - minutes(15)
    _failed_send(storage, pn1, "ann", "190", NOW + minutes(1))
    _failed_send(storage, pn1, "bob", "190", NOW + minutes(2))
    _failed_send(storage, pn1, "cid", None, NOW + minutes(3))
    _failed_send(storage, pn2, "dan", "131047", NOW + minutes(4))
    _failed_send(storage, pn2, "eve", "190", since - timedelta(seconds=1))

    with storage.uow() as uow:
        failures = uow.notifications.send_failures(since)

    assert failures == [
        SendFailures("user-1", "pn-1", {"190": 2, "": 1}, NOW + minutes(3)),
        SendFailures("user-2", "pn-2", {"131047": 1}, NOW + minutes(4)),
    ]


def test_conversations_waiting_for_a_person_are_named_by_their_first_held_message(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    first = _record(storage, route, "wamid.1", now=NOW)
    second = _record(storage, route, "wamid.2", now=NOW + minutes(1))
    _writes(storage, route, "bob", NOW)  # answered by nobody yet, but not held: the bot is on
    with storage.uow() as uow:
        conversation = uow.conversations.lock("user-1", first.conversation_id)
        assert conversation is not None
        uow.conversations.save_bot(conversation.pause(NOW))
        uow.commit()
    work = _work(storage, _scope(first.conversation_id))
    held = Turn.start(work.conversation, work.messages, route, work.credits, 1, NOW + minutes(2))
    assert isinstance(held, TurnHeld)
    assert storage.turns.hold(held)

    with storage.uow() as uow:
        waiting = uow.notifications.waiting_for_human()

    assert second.conversation_id == first.conversation_id
    assert waiting == [WaitingConversation("user-1", first.conversation_id, "pn-1", first.message_id, 2, NOW)]


# --- webhooks --------------------------------------------------------------------------------------


def test_a_webhook_endpoint_is_created_replaced_and_deleted(leads: Leads) -> None:
    storage = leads.storage
    _seed(storage.uow)
    endpoint = WebhookEndpoint.configure("user-1", "https://crm.example.com/hook", "whsec_first", NOW)
    rotated = endpoint.move_to("https://crm.example.com/v2").rotate("whsec_second", NOW + minutes(1))

    with storage.uow() as uow:
        assert uow.webhooks.endpoint("user-1") is None
        uow.webhooks.save_endpoint(endpoint)
        uow.commit()
    with storage.uow() as uow:
        assert uow.webhooks.endpoint("user-1") == endpoint
        uow.webhooks.save_endpoint(rotated)
        uow.commit()
    with storage.uow() as uow:
        assert uow.webhooks.endpoint("user-1") == rotated
        assert uow.webhooks.endpoint("user-2") is None
        assert uow.webhooks.delete_endpoint("user-1")
        assert not uow.webhooks.delete_endpoint("user-1")
        uow.commit()
    with storage.uow() as uow:
        assert uow.webhooks.endpoint("user-1") is None


def test_a_webhook_secret_is_encrypted_at_rest(postgres: Storage, clean_database: str) -> None:
    _seed(postgres.uow)
    endpoint = WebhookEndpoint.configure("user-1", "https://crm.example.com/hook", "whsec_top_secret", NOW)
    with postgres.uow() as uow:
        uow.webhooks.save_endpoint(endpoint)
        uow.commit()

    (stored,) = _raw(clean_database, "SELECT secret FROM webhook_endpoints WHERE user_id = %s", "user-1")

    assert isinstance(stored, str) and stored.startswith("enc1:")
    assert "whsec_top_secret" not in stored
    assert TEST_CIPHER.decrypt(stored) == "whsec_top_secret"


def test_only_pending_deliveries_due_and_not_held_are_claimed(leads: Leads) -> None:
    storage = leads.storage
    _seed(storage.uow)
    notification = _notify(storage, _notice("hot"))
    first = _deliver_to(storage, notification, "evt_1", NOW)
    second = _deliver_to(storage, notification, "evt_2", NOW + minutes(1))
    later = _deliver_to(storage, notification, "evt_later", NOW + minutes(10))
    delivered = _deliver_to(storage, notification, "evt_done", NOW)
    assert delivered.delivery_id is not None
    _attempt(storage, delivered.delivery_id, WebhookAttempt(1, NOW, 200, None, 20), accepted=True)

    assert _claim_deliveries(storage, NOW + minutes(1)) == [first.delivery_id, second.delivery_id]
    assert _claim_deliveries(storage, NOW + minutes(2)) == []
    assert _claim_deliveries(storage, NOW + minutes(3)) == [first.delivery_id, second.delivery_id]
    assert _claim_deliveries(storage, NOW + minutes(10)) == [first.delivery_id, second.delivery_id, later.delivery_id]


def test_a_saved_attempt_releases_the_hold_and_is_logged_with_its_delivery(leads: Leads) -> None:
    storage = leads.storage
    _seed(storage.uow)
    notification = _notify(storage, _notice("hot"))
    delivery = _deliver_to(storage, notification, "evt_1")
    delivery_id = delivery.delivery_id
    assert delivery_id is not None
    assert _claim_deliveries(storage, NOW, hold=minutes(10)) == [delivery_id]
    refused = WebhookAttempt(1, NOW, 500, "HTTP 500: oops", 120)

    retried = _attempt(storage, delivery_id, refused, accepted=False)

    with storage.uow() as uow:
        assert uow.webhooks.delivery(delivery_id) == retried
    assert retried.next_attempt_at == NOW + timedelta(seconds=30)
    assert _claim_deliveries(storage, NOW + timedelta(seconds=29)) == []
    assert _claim_deliveries(storage, NOW + timedelta(seconds=30)) == [delivery_id]  # the hold went with the answer
    accepted = WebhookAttempt(2, NOW + timedelta(seconds=30), 204, None, 35)
    done = _attempt(storage, delivery_id, accepted, accepted=True)

    with storage.uow() as uow:
        page = uow.webhooks.list("user-1", DeliveryQuery())
    assert done.status is DeliveryStatus.DELIVERED
    assert list(page.items) == [LoggedDelivery(done, (refused, accepted))]
    assert page.next_cursor is None
    assert _claim_deliveries(storage, NOW + minutes(5)) == []


def test_deliveries_are_listed_newest_first_filtered_page_by_page(leads: Leads) -> None:
    storage = leads.storage
    _seed(storage.uow)
    _seed(storage.uow, "user-2", "pn-2")
    hot = _notify(storage, _notice("hot"))
    demo = _notify(storage, _notice("demo"))
    theirs = _notify(storage, _notice("theirs", user_id="user-2"))
    deliveries = [_deliver_to(storage, hot if n % 2 == 0 else demo, f"evt_{n}") for n in range(5)]
    _deliver_to(storage, theirs, "evt_theirs")
    done_id = deliveries[2].delivery_id
    assert done_id is not None
    done = _attempt(storage, done_id, WebhookAttempt(1, NOW, 200, None, 10), accepted=True)
    ids = [d.delivery_id for d in deliveries]

    def listed(**query: object) -> tuple[list[int | None], int | None]:
        with storage.uow() as uow:
            page = uow.webhooks.list("user-1", DeliveryQuery(**query))  # type: ignore[arg-type]
        return [logged.delivery.delivery_id for logged in page.items], page.next_cursor

    assert listed(limit=2) == ([ids[4], ids[3]], ids[3])
    assert listed(limit=2, cursor=ids[3]) == ([ids[2], ids[1]], ids[1])
    assert listed(limit=2, cursor=ids[1]) == ([ids[0]], None)
    assert listed(status=DeliveryStatus.DELIVERED) == ([done.delivery_id], None)
    assert listed(status=DeliveryStatus.PENDING, notification_id=hot.notification_id) == ([ids[4], ids[0]], None)
    assert listed(notification_id=theirs.notification_id) == ([], None)


def test_two_senders_at_once_never_claim_the_same_delivery(postgres: Storage) -> None:
    _seed(postgres.uow)
    notification = _notify(postgres, _notice("hot"))
    due = {_deliver_to(postgres, notification, f"evt_{n}", NOW + timedelta(seconds=n)).delivery_id for n in range(30)}

    first, second = _claim_at_once(postgres, lambda uow: uow.webhooks.claim_due(NOW + minutes(1), NOW + minutes(3), 20))

    assert not set(first) & set(second)
    assert set(first) | set(second) == due
    assert max(len(first), len(second)) == 20


# --- the ledger and the agents ---------------------------------------------------------------------


def test_an_extraction_charge_names_its_extraction_in_the_ledger(leads: Leads) -> None:
    storage = leads.storage
    route = _seed(storage.uow)
    extraction = _add(storage, evolve(_reading(_writes(storage, route, "ann", NOW)), credits_charged=2))
    assert extraction.extraction_id is not None
    _top_up(storage.uow, 10)

    with storage.uow() as uow:
        entry = uow.credits.record(CreditMovement.charge_extraction("user-1", 2, extraction.extraction_id), NOW)
        uow.commit()

    assert (entry.kind, entry.amount, entry.balance_after, entry.reason, entry.extraction_id) == (
        LedgerKind.CHARGE,
        -2,
        8,
        "lead_extraction",
        extraction.extraction_id,
    )
    with storage.uow() as uow:
        newest, top_up = uow.credits.ledger("user-1", 10)
    assert newest == entry
    assert top_up.extraction_id is None


def test_an_agents_extraction_prompt_is_kept_when_added_and_when_changed(leads: Leads) -> None:
    storage = leads.storage
    agent = an_agent("user-1", "pn-1").extract_with("pmpt_leads")
    with storage.uow() as uow:
        uow.users.add(a_user("user-1"))
        uow.channels.add(a_channel("user-1", "pn-1"))
        uow.agents.add(agent)
        uow.commit()
    with storage.uow() as uow:
        route = uow.channels.route("pn-1")
        assert [uow.agents.get("user-1", agent.agent_id), uow.agents.holder("pn-1")] == [agent, agent]
        assert uow.agents.list("user-1") == [agent]
    assert route is not None and route.agent == agent
    built_in = agent.extract_with(None)

    with storage.uow() as uow:
        save_relink(uow, relink(agent, built_in, agent), NOW + minutes(1))
        uow.commit()

    with storage.uow() as uow:
        assert uow.agents.get("user-1", agent.agent_id) == built_in
    assert built_in.extraction_prompt_id is None
