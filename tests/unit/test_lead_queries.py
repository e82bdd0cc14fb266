"""LeadQueries on the in-memory unit of work: the latest lead of each conversation with its channel's kind,
one conversation's history, and nothing of another tenant's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from application.ports.lead_storage import ExtractionQuery
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.delete_channel import DeleteChannelCommand
from application.use_cases.lead_queries import LeadQueries
from domain.channels import ChannelType
from domain.errors import NotFound
from domain.extraction import NOT_STATED, Extraction, LeadFields
from tests.unit.conftest import PHONE_NUMBER_ID, App

LISBON_SUMMER = timezone(timedelta(hours=1))


def extract(app: App, conversation_id: int, through: int, **answer: object) -> Extraction:
    """What the extraction job stores after reading a conversation up to message `through`."""
    app.clock.advance(minutes=1)
    conversation = app.store.tables.conversations[conversation_id]
    fields = LeadFields.from_answer(answer, written_at=app.clock.now())
    with app.uow() as uow:
        stored = uow.extractions.add(
            Extraction(
                None,
                conversation.user_id,
                conversation_id,
                conversation.phone_number_id,
                through,
                fields,
                app.clock.now(),
            )
        )
        uow.commit()
    assert stored is not None
    return stored


@pytest.fixture
def queries(app: App) -> LeadQueries:
    return LeadQueries(app.uow)


def _conversation_of(app: App, customer: str) -> int:
    app.receive("Hi", customer=customer)
    return next(c.conversation_id for c in app.conversations() if c.customer_id == customer)


def test_the_latest_reading_of_each_conversation_is_listed_newest_first_with_its_channel(
    app: App, queries: LeadQueries
) -> None:
    ana = _conversation_of(app, "ana")
    bob = _conversation_of(app, "bob")
    extract(app, ana, 1, name="Ana", urgency=1)
    only_bob = extract(app, bob, 1, name="Bob")
    latest_ana = extract(app, ana, 2, name="Ana", urgency=3)

    page = queries.latest(app.user.user_id, ExtractionQuery())

    assert [lead.extraction for lead in page.items] == [latest_ana, only_bob]
    assert [lead.channel for lead in page.items] == [ChannelType.WHATSAPP, ChannelType.WHATSAPP]
    assert page.next_cursor is None


def test_filters_and_the_cursor_reach_the_storage(app: App, queries: LeadQueries) -> None:
    customers = ["c1", "c2", "c3"]
    for customer in customers:
        extract(app, _conversation_of(app, customer), 1, urgency=3, fit=3)
    extract(app, _conversation_of(app, "cold"), 1, urgency=1)

    first = queries.latest(app.user.user_id, ExtractionQuery(min_urgency=3, limit=2))
    rest = queries.latest(app.user.user_id, ExtractionQuery(min_urgency=3, limit=2, cursor=first.next_cursor))

    assert len(first.items) == 2 and first.next_cursor is not None
    assert len(rest.items) == 1 and rest.next_cursor is None
    assert {lead.extraction.fields.urgency for lead in [*first.items, *rest.items]} == {3}


def test_the_history_is_every_reading_newest_first_with_what_was_missing(app: App, queries: LeadQueries) -> None:
    ana = _conversation_of(app, "ana")
    demo = datetime(2026, 1, 2, 15, 0, tzinfo=LISBON_SUMMER)
    first = extract(app, ana, 1, name="Ana", email="not an address")
    second = extract(app, ana, 3, name="Ana", email="ana@shop.example", demo_datetime=demo.isoformat())

    page = queries.history(app.user.user_id, ana, None, 50)

    assert [lead.extraction for lead in page.items] == [second, first]
    assert page.items[1].extraction.fields.missing["email"] == "'not an address' is not an e-mail address"
    assert page.items[0].extraction.fields.missing["company"] == NOT_STATED
    assert page.items[0].extraction.fields.demo_datetime == demo
    assert page.items[0].extraction.fields.demo_datetime.utcoffset() == timedelta(hours=1)


def test_a_deleted_channels_leads_keep_their_channel_kind(app: App, queries: LeadQueries) -> None:
    ana = _conversation_of(app, "ana")
    extract(app, ana, 1, name="Ana")
    app.delete_channel(DeleteChannelCommand(app.user.user_id, PHONE_NUMBER_ID))

    (lead,) = queries.latest(app.user.user_id, ExtractionQuery()).items

    assert lead.channel is ChannelType.WHATSAPP


def test_another_tenants_conversation_has_no_history_for_this_one(app: App, queries: LeadQueries) -> None:
    ana = _conversation_of(app, "ana")
    extract(app, ana, 1, name="Ana")
    rival = app.create_user(CreateUserCommand(email="rival@elsewhere.example")).user

    with pytest.raises(NotFound):
        queries.history(rival.user_id, ana, None, 50)
    with pytest.raises(NotFound):
        queries.history(app.user.user_id, 999, None, 50)
    assert queries.latest(rival.user_id, ExtractionQuery()).items == []


def test_an_unknown_user_has_no_leads(queries: LeadQueries) -> None:
    with pytest.raises(NotFound):
        queries.latest("usr_nobody", ExtractionQuery())


def test_a_lead_of_a_demo_keeps_the_customers_offset_through_the_query(app: App, queries: LeadQueries) -> None:
    ana = _conversation_of(app, "ana")
    extract(app, ana, 1, demo_datetime="2026-01-03T09:30:00-05:00")

    (lead,) = queries.latest(app.user.user_id, ExtractionQuery(has_demo=True)).items

    demo = lead.extraction.fields.demo_datetime
    assert demo is not None and demo.utcoffset() == timedelta(hours=-5)
    assert demo == datetime(2026, 1, 3, 14, 30, tzinfo=UTC)
    assert queries.latest(app.user.user_id, ExtractionQuery(has_demo=False)).items == []
