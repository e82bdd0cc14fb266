"""What every change of an agent's link shares (RelinkAgent, DeleteAgent, DeleteChannel): the seats the
moves leave read under lock, the relink decided by the domain and saved in the unit of work's
transaction; after commit, the new conversations' scopes enqueued and the routes forgotten."""

from __future__ import annotations

import logging
from datetime import datetime

from application.ports.repositories import UnitOfWork
from application.ports.services import JobQueue, QueueUnavailable
from application.routes import ChannelRoutes
from domain.messages import OrderingScope
from domain.relink import Move, Relink

log = logging.getLogger(__name__)


def save_relink(uow: UnitOfWork, moves: tuple[Move, ...], now: datetime) -> tuple[Relink, tuple[int, ...]]:
    """Decide and save the relink of `moves` in `uow` (not committed). Returns it with the ids of the
    conversations it opened."""
    departures = tuple(move.depart(uow.seats.seat(move.before), now) for move in moves if move.leaves)
    relink = Relink(agents=tuple(move.after for move in moves), departures=departures, at=now)
    return relink, uow.seats.save(relink)


def after_relink(
    relink: Relink,
    opened: tuple[int, ...],
    channels: set[str],
    routes: ChannelRoutes,
    queue: JobQueue,
    ordering: OrderingScope,
) -> None:
    """Once committed: the routes of the channels involved forgotten (the next turn reads the new agent),
    the carried-over messages' scopes enqueued (the recovery sweep finds them if the queue is down)."""
    for phone_number_id in channels:
        routes.forget(phone_number_id)
    for reopened, conversation_id in zip(relink.reopened, opened, strict=True):
        scope = ordering.key(conversation_id=conversation_id, phone_number_id=reopened.phone_number_id)
        try:
            queue.enqueue_scope(scope)
        except QueueUnavailable:
            log.warning("enqueue_failed", extra={"scope": scope, "conversation_id": conversation_id})


def channels_of(moves: tuple[Move, ...]) -> set[str]:
    return {
        channel
        for move in moves
        for channel in (move.before.phone_number_id, move.after.phone_number_id)
        if channel is not None
    }
