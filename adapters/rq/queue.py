"""`JobQueue` on Redis and RQ: due scopes wait on a Redis list, and RQ jobs — drainers — each take many.

One RQ job per scope cost the web process RQ's job creation for every message and a worker RQ's whole
per-job bookkeeping (about 20 round trips and 3 ms of CPU) for every turn. Instead a scope that becomes due
is one entry on a list (`mcagent:due:<queue>`), written with its "waiting" mark in one round trip, and a
drainer — an ordinary RQ job, with RQ's timeout, registries and warm shutdown — takes due scopes one after
another until none has come for a while or its lifetime is over.

Drainers are queued where they are needed: when a scope becomes due and no drainer waits to start, and
when a drainer takes a scope with more behind it and none waits. So their number follows the backlog, up
to the workers' threads, and at a steady rate nearly every scope is taken by a drainer already running.
A worker that dies mid-turn loses at most the scopes its drainers were answering: their messages stay
stored as received, and the recovery sweep queues them again, as it did for a lost job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import redis
from attrs import frozen
from rq import Queue

from application.ports.services import QueueUnavailable

#: Failed jobs are kept a week for troubleshooting (RQ's default is a year of Redis memory).
FAILURE_TTL = timedelta(days=7)

#: How long "this scope is waiting to be taken" is believed without a drainer taking it. Past it a new
#: trigger queues the scope again: a lost mark costs at most one needless look, never a missed message.
WAITING_MARK_TTL_S = 120

#: A drainer ends when no scope has come for this long: its thread goes back to RQ for other jobs.
DRAIN_IDLE_S = 5.0

#: ... and in any case after this long, so RQ's job timeout bounds it and workers' jobs turn over.
DRAIN_LIFETIME_S = 60.0

#: A waiting drainer blocks on the list at most this long at a time, so a stop request is seen within it.
_BLOCK_S = 1

# Marks the scope due unless it is already (or `force`), in one round trip; answers -1 when it was
# already due, else how many drainers wait to start. KEYS: the mark, the due list, RQ's queue list.
_MARK_DUE = """
if ARGV[1] ~= '1' and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
    return -1
end
redis.call('RPUSH', KEYS[2], ARGV[3])
return redis.call('LLEN', KEYS[3])
"""

# Takes the oldest due scope and clears its mark (work stored from now on needs the scope due again);
# answers the entry and 1 when more scopes wait and no drainer waits to start. KEYS: the due list, RQ's
# queue list; ARGV: the marks' prefix.
_TAKE_DUE = """
local entry = redis.call('LPOP', KEYS[1])
if not entry then
    return false
end
local scope = string.match(entry, '^%S+ (%S+)')
if scope then
    redis.call('DEL', ARGV[1] .. scope)
end
local more = 0
if redis.call('LLEN', KEYS[1]) > 0 and redis.call('LLEN', KEYS[2]) == 0 then
    more = 1
end
return {entry, more}
"""


@frozen
class DueScope:
    """A scope taken from the due list: its key, the correlation id of the trigger, when it became due."""

    scope_key: str
    correlation_id: str | None
    due_at_ms: int

    @classmethod
    def parse(cls, entry: bytes | str) -> DueScope:
        text = entry.decode() if isinstance(entry, bytes) else entry
        due_at, scope_key, correlation_id = [*text.split(" ", 2), "", ""][:3]
        return cls(scope_key, correlation_id or None, int(due_at))

    def entry(self) -> str:
        return f"{self.due_at_ms} {self.scope_key} {self.correlation_id or ''}"


class RqJobQueue:
    """Due scopes on a Redis list, drained by RQ jobs running `drain_function` (a dotted path, no arguments).

    Scope keys have no spaces (`conversation:<id>`, `channel:<id>`). No job `ttl` and no RQ `Retry`:
    ordering comes from the scope lock and the state in Postgres, so a scope taken late, twice or after a
    newer trigger is harmless. Drainers keep no result (result_ttl=0): their effects are in Postgres.
    """

    def __init__(self, connection: redis.Redis, queue_name: str, drain_function: str, job_timeout_s: int) -> None:
        self._queue = Queue(queue_name, connection=connection)
        self._connection = connection
        self._waiting_prefix = f"mcagent:waiting:{queue_name}:"
        self._due_key = f"mcagent:due:{queue_name}"
        self._drain_function = drain_function
        # A drainer answers scopes for up to its lifetime, then finishes the one under way.
        self._job_timeout_s = job_timeout_s + int(DRAIN_LIFETIME_S)
        self._mark_due = connection.register_script(_MARK_DUE)
        self._take_due = connection.register_script(_TAKE_DUE)

    @property
    def due_key(self) -> str:
        """The Redis list of due scopes (the benchmark and the fault rig read its length)."""
        return self._due_key

    def enqueue_scope(self, scope_key: str, *, correlation_id: str | None = None, force: bool = False) -> None:
        if " " in scope_key:
            raise ValueError(f"a scope key has no spaces: {scope_key!r}")
        entry = DueScope(scope_key, correlation_id, int(time.time() * 1000)).entry()
        try:
            waiting_drainers = self._mark_due(
                keys=[self._waiting_prefix + scope_key, self._due_key, self._queue.key],
                args=["1" if force else "0", WAITING_MARK_TTL_S, entry],
            )
            if waiting_drainers == 0:
                self._queue_drainer()
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not enqueue {scope_key}: {error}") from error

    def taken(self, scope_key: str) -> None:
        try:
            self._connection.delete(self._waiting_prefix + scope_key)
        except redis.RedisError as error:
            # The marker expires by itself; until then new work for the scope waits for the sweep.
            raise QueueUnavailable(f"could not clear the waiting mark of {scope_key}: {error}") from error

    def take(self, block_s: float = 0) -> DueScope | None:
        """The oldest due scope, its mark cleared; waits up to `block_s` (whole seconds) for one. Raises
        QueueUnavailable. Queues one more drainer when a backlog stands behind it and none waits."""
        try:
            if block_s > 0:
                return self._wait_for_due(block_s)
            taken = self._take_due(keys=[self._due_key, self._queue.key], args=[self._waiting_prefix])
            if not taken:
                return None
            entry, more = taken
            if more:
                self._queue_drainer()
            return DueScope.parse(entry)
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not take a due scope: {error}") from error

    def _wait_for_due(self, block_s: float) -> DueScope | None:
        # BLPOP answers at once when a scope is due, so a blocking take is two round trips (this and the
        # pipeline) where a look first and a wait after were three, and an idle drainer's second is one.
        # Clearing the mark after the pop, not with it, is safe: a message stored meanwhile finds the mark
        # and queues nothing, but it was stored before the turn about to start reads the scope's work.
        popped = self._connection.blpop([self._due_key], timeout=max(1, int(block_s)))
        if popped is None:
            return None
        due = DueScope.parse(popped[1])
        with self._connection.pipeline(transaction=False) as pipeline:
            pipeline.delete(self._waiting_prefix + due.scope_key)
            pipeline.llen(self._due_key)
            pipeline.llen(self._queue.key)
            _, backlog, waiting_drainers = pipeline.execute()
        if backlog > 0 and waiting_drainers == 0:
            self._queue_drainer()
        return due

    def drain(
        self,
        handle: Callable[[DueScope], object],
        stop: threading.Event,
        *,
        idle_s: float = DRAIN_IDLE_S,
        lifetime_s: float = DRAIN_LIFETIME_S,
        limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> int:
        """Handle due scopes one after another until none came for `idle_s`, `lifetime_s` is over, `limit`
        were handled, or `stop` is set (a warm shutdown: the scope under way is finished). Returns how many
        were handled.

        `handle` raising ends the drainer with that error, as a job's error ends the job: RQ records it, and
        the scope's messages, still stored as received, are queued again by the sweep."""
        began = last = clock()
        handled = 0
        while not stop.is_set() and clock() - began < lifetime_s and (limit is None or handled < limit):
            due = self.take(block_s=_BLOCK_S if idle_s > 0 else 0)
            if due is None:
                if clock() - last >= idle_s:
                    break
                continue
            handle(due)
            handled += 1
            last = clock()
        return handled

    def _queue_drainer(self) -> None:
        # RQ sends its queue registration and the job in two round trips; on our pipeline, one.
        with self._connection.pipeline() as pipeline:
            self._queue.enqueue_call(
                self._drain_function,
                timeout=self._job_timeout_s,
                result_ttl=0,
                failure_ttl=int(FAILURE_TTL.total_seconds()),
                pipeline=pipeline,
            )
            pipeline.execute()

    def queue_depth(self) -> int:
        """Scopes waiting to be taken by a drainer. Raises QueueUnavailable."""
        try:
            return int(self._connection.llen(self._due_key))
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not read the due list's length: {error}") from error

    def oldest_job_age_s(self) -> float | None:
        """Seconds the oldest due scope has waited, None when none waits. Raises QueueUnavailable."""
        try:
            head = self._connection.lindex(self._due_key, 0)
        except redis.RedisError as error:
            raise QueueUnavailable(f"could not read the due list: {error}") from error
        if head is None:
            return None
        return max(0.0, time.time() - DueScope.parse(head).due_at_ms / 1000)
