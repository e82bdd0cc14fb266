"""A business reads its leads: the latest extraction of each conversation (the morning list a sales team
works from), or every extraction of one conversation (how the lead changed as the customer wrote)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from attrs import frozen

from application.ports.lead_storage import ExtractionPage, ExtractionQuery
from application.ports.repositories import UnitOfWork
from domain.channels import ChannelType
from domain.errors import NotFound
from domain.extraction import Extraction


@frozen
class Lead:
    """An extraction with the type of the channel it came from (None: a channel since removed for good)."""

    extraction: Extraction
    channel: ChannelType | None


@frozen
class LeadPage:
    items: Sequence[Lead]
    #: The `extraction_id` the next page starts below; None on the last page.
    next_cursor: int | None


class LeadQueries:
    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self._uow = uow

    def latest(self, user_id: str, query: ExtractionQuery) -> LeadPage:
        """The latest extraction of each of the user's conversations that matches `query`, newest first."""
        with self._uow() as uow:
            if uow.users.get(user_id) is None:
                raise NotFound(f"user {user_id} not found")
            page = uow.extractions.list_latest(user_id, query)
            return _with_channels(uow, user_id, page)

    def history(self, user_id: str, conversation_id: int, cursor: int | None, limit: int) -> LeadPage:
        """Every extraction of one conversation, newest first."""
        with self._uow() as uow:
            conversation = uow.conversations.get(conversation_id)
            # Another tenant's conversation does not exist, as far as this one can tell.
            if conversation is None or conversation.user_id != user_id:
                raise NotFound(f"conversation {conversation_id} not found")
            page = uow.extractions.history(user_id, conversation_id, cursor, limit)
            return _with_channels(uow, user_id, page)


def _with_channels(uow: UnitOfWork, user_id: str, page: ExtractionPage) -> LeadPage:
    # A page names a handful of channels at most: one look-up each, deleted channels included (their
    # leads stay the business's).
    types: dict[str, ChannelType | None] = {}
    for phone_number_id in {extraction.phone_number_id for extraction in page.items}:
        route = uow.channels.route(phone_number_id)
        types[phone_number_id] = route.channel.type if route is not None and route.user_id == user_id else None
    return LeadPage(items=[_lead(extraction, types) for extraction in page.items], next_cursor=page.next_cursor)


def _lead(extraction: Extraction, types: Mapping[str, ChannelType | None]) -> Lead:
    return Lead(extraction=extraction, channel=types.get(extraction.phone_number_id))
