"""Locks on Redis that only their holder can release, kept alive by one renewal thread per instance."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time

import redis
import structlog

log = structlog.get_logger()

# Both scripts compare the token first: a holder whose lock expired and was taken by someone else
# must never delete or extend the new holder's lock (the bug of a plain DEL / PEXPIRE).
_RELEASE_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_EXTEND_IF_OWNER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLockHandle:
    """One held lock. `lost` turns True when renewal finds it gone or taken, or its expiry passed unconfirmed."""

    def __init__(self, locks: RedisLocks, key: str, token: str, valid_until: float) -> None:
        self._locks = locks
        self.key = key
        self.token = token
        # Monotonic time before which Redis certainly still holds the key for us: the moment the
        # last successful SET/PEXPIRE was *sent* plus the TTL, so the estimate errs on the safe side.
        self.valid_until = valid_until
        self._lost = False

    @property
    def lost(self) -> bool:
        return self._lost or time.monotonic() >= self.valid_until

    def mark_lost(self) -> None:
        self._lost = True

    def release(self) -> None:
        self._locks.release(self)


class RedisLocks:
    """`Locks` on Redis: `SET key token NX PX ttl`, released and renewed only with the holder's token.

    Build it after the process forks (in the worker's composition root): the renewal thread does not
    survive a fork, and a fresh one is started by the next `acquire` if it did not.
    """

    def __init__(self, client: redis.Redis, ttl_ms: int, prefix: str = "mcagent:lock:") -> None:
        if ttl_ms < 30:
            raise ValueError("ttl_ms must leave room for renewals: at least 30 ms")
        self._client = client
        self._ttl_ms = ttl_ms
        self._prefix = prefix
        self._release_if_owner = client.register_script(_RELEASE_IF_OWNER)
        self._extend_if_owner = client.register_script(_EXTEND_IF_OWNER)
        self._held: dict[str, RedisLockHandle] = {}
        self._mutex = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._stop_renewing = threading.Event()

    def acquire(self, key: str) -> RedisLockHandle | None:
        """The handle, or None when someone holds the lock or Redis cannot be reached.

        An unreachable Redis answers None rather than raising: the work stays stored in Postgres and the
        recovery sweep triggers it again, which is what happens to a scope somebody else holds anyway.
        """
        full_key = self._prefix + key
        # Host and pid make `GET mcagent:lock:…` say who holds a lock when troubleshooting.
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(12)}"
        sent_at = time.monotonic()
        try:
            taken = self._client.set(full_key, token, nx=True, px=self._ttl_ms)
        except redis.RedisError as error:
            log.warning("lock_acquire_failed", lock=full_key, error=str(error))
            return None
        if not taken:
            return None
        handle = RedisLockHandle(self, full_key, token, sent_at + self._ttl_ms / 1000)
        with self._mutex:
            self._held[token] = handle
            self._ensure_renewer()
        return handle

    def release(self, handle: RedisLockHandle) -> None:
        """Delete the lock if, and only if, it still carries this handle's token. Safe to call twice."""
        with self._mutex:
            if self._held.pop(handle.token, None) is None:
                return
        try:
            self._release_if_owner(keys=[handle.key], args=[handle.token])
        except redis.RedisError as error:
            # The key expires by itself within the TTL; nothing else is worth doing.
            log.warning("lock_release_failed", lock=handle.key, error=str(error))

    def is_held(self, key: str) -> bool:
        """Whether somebody holds `key` now. False when Redis cannot say: a needless trigger is harmless."""
        try:
            return bool(self._client.exists(self._prefix + key))
        except redis.RedisError as error:
            log.warning("lock_check_failed", lock=self._prefix + key, error=str(error))
            return False

    def close(self) -> None:
        """Stop renewing. Locks still held expire within their TTL."""
        with self._mutex:
            renewer = self._renewer
            self._stop_renewing.set()
            self._renewer = None
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join()

    def _ensure_renewer(self) -> None:
        # Called with the mutex held. A thread that is not alive was either never started, stopped by
        # close(), or left behind in the parent by a fork.
        if self._renewer is not None and self._renewer.is_alive():
            return
        self._stop_renewing = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_until_stopped, args=(self._stop_renewing,), name="redis-lock-renewer", daemon=True
        )
        self._renewer.start()

    def _renew_until_stopped(self, stop: threading.Event) -> None:
        # A third of the TTL leaves two more attempts before expiry when one renewal fails.
        while not stop.wait(self._ttl_ms / 3000):
            with self._mutex:
                held = list(self._held.values())
            if held:
                self._renew(held)

    def _renew(self, held: list[RedisLockHandle]) -> None:
        """Extend every lock held, in one round trip: a hundred turns in flight were a hundred round trips
        in a row, on a thread that waits its turn for the interpreter like the others, and a renewal that
        came too late lost its lock (`lock_lost`) under load. A lock released while its renewal was on the
        way finds its key gone: that is its holder letting go, not a loss, and is not reported as one."""
        sent_at = time.monotonic()
        try:
            with self._client.pipeline(transaction=False) as pipeline:
                for handle in held:
                    self._extend_if_owner(keys=[handle.key], args=[handle.token, self._ttl_ms], client=pipeline)
                results = pipeline.execute(raise_on_error=False)
        except redis.RedisError as error:
            results = [error] * len(held)
        for handle, extended in zip(held, results, strict=True):
            if self._released(handle):
                continue  # released while this renewal was on its way: its key is gone because it let go
            if isinstance(extended, Exception):
                if handle.lost:
                    self._give_up(handle, reason=f"could not renew before expiry: {extended}")
                else:
                    log.warning("lock_renewal_failed", lock=handle.key, error=str(extended))
            elif extended:
                handle.valid_until = sent_at + self._ttl_ms / 1000
            else:
                self._give_up(handle, reason="expired or taken by another holder")

    def _released(self, handle: RedisLockHandle) -> bool:
        with self._mutex:
            return handle.token not in self._held

    def _give_up(self, handle: RedisLockHandle, *, reason: str) -> None:
        handle.mark_lost()
        with self._mutex:
            self._held.pop(handle.token, None)
        log.error("lock_lost", lock=handle.key, reason=reason)
