"""Keeps a fixed number of worker processes alive and stops them gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

log = structlog.get_logger()

#: A child that lived at least this long is considered healthy: its next restart is not slowed down.
STABLE_AFTER_S = 10.0

#: What makes a child write every thread's stack to stderr (the worker's log); sent before a kill.
DUMP_STACKS = signal.SIGUSR1

#: How long a child is given to write its stacks before it is killed.
_DUMP_WAIT_S = 1.0


class Supervisor:
    """Forks `processes` children, each running `target(index)`, and restarts any that dies.

    Children that keep dying right after start (Redis or Postgres down at start-up) are restarted with a
    doubling delay, up to `max_restart_delay_s`, instead of in a tight loop. On SIGTERM or SIGINT the
    children get SIGTERM (RQ's warm shutdown: the current job finishes), then SIGKILL after
    `grace_period_s`. The supervisor opens no pool or connection: children build their own after fork.
    """

    def __init__(
        self,
        target: Callable[[int], None],
        processes: int,
        *,
        restart_delay_s: float = 0.5,
        max_restart_delay_s: float = 30.0,
        grace_period_s: float = 30.0,
        scale: Callable[[int], int] | None = None,
        scale_interval_s: float = 2.0,
    ) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._target = target
        self._processes = processes
        self._scale = scale
        self._scale_interval_s = scale_interval_s
        self._next_scale_at = 0.0
        self._retiring: set[int] = set()
        self._restart_delay_s = restart_delay_s
        self._max_restart_delay_s = max_restart_delay_s
        self._grace_period_s = grace_period_s
        self._context = multiprocessing.get_context("fork")
        self._children: dict[int, BaseProcess] = {}
        self._started_at: dict[int, float] = {}
        self._quick_deaths: dict[int, int] = {}
        self._restart_at: dict[int, float] = {}
        self._stop_signal: int | None = None
        self._wakeup_fds: tuple[int, int] | None = None

    def child_pids(self) -> list[int]:
        return [pid for child in list(self._children.values()) if (pid := child.pid) is not None]

    def run(self) -> None:
        """Supervise until SIGTERM or SIGINT, then stop the children. Must be called from the main thread."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        self._wakeup_fds = (read_fd, write_fd)
        # The wakeup fd turns a signal into a readable pipe, so waiting on the children's sentinels
        # returns at once instead of after a polling interval.
        previous_wakeup_fd = signal.set_wakeup_fd(write_fd)
        previous_handlers = {sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self._processes):
                self._start(index)
            log.info("supervisor_started", processes=self._processes, pids=self.child_pids())
            self._next_scale_at = time.monotonic() + self._scale_interval_s
            while self._stop_signal is None:
                self._wait_for_change(read_fd)
                self._reap_dead_children()
                self._restart_due_children()
                self._rescale_when_due()
            log.info("supervisor_stopping", signal=signal.Signals(self._stop_signal).name)
            self._stop_children()
        finally:
            signal.set_wakeup_fd(previous_wakeup_fd)
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            self._wakeup_fds = None
            os.close(read_fd)
            os.close(write_fd)
        log.info("supervisor_stopped")

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_signal is None:
            self._stop_signal = signum

    def _start(self, index: int) -> None:
        child = self._context.Process(target=self._child_main, args=(index,), name=f"worker-{index}", daemon=False)
        child.start()
        self._children[index] = child
        self._started_at[index] = time.monotonic()

    def _child_main(self, index: int) -> None:
        # The child inherits the supervisor's handlers and wakeup pipe; its signals must not wake the parent.
        signal.set_wakeup_fd(-1)
        if self._wakeup_fds is not None:
            for fd in self._wakeup_fds:
                os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # Ctrl+C reaches the whole process group; the supervisor turns it into one SIGTERM per child.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # Said by the supervisor before it kills a child that did not stop in time: the log then shows
        # what the child was doing instead of stopping.
        faulthandler.register(DUMP_STACKS, all_threads=True)
        self._target(index)

    @property
    def processes(self) -> int:
        """How many children the supervisor keeps now (it changes when scaling)."""
        return self._processes

    def _rescale_when_due(self) -> None:
        if self._scale is None or time.monotonic() < self._next_scale_at or self._stop_signal is not None:
            return
        self._next_scale_at = time.monotonic() + self._scale_interval_s
        try:
            wanted = max(1, self._scale(self._processes))
        except Exception:
            # The measure behind the decision (Redis) may be briefly unreachable: keep the pool as it is.
            log.exception("scaling_decision_failed")
            return
        if wanted == self._processes:
            return
        log.info("worker_pool_resized", processes_before=self._processes, processes_after=wanted)
        if wanted > self._processes:
            for index in range(self._processes, wanted):
                self._retiring.discard(index)
                self._restart_at.pop(index, None)
                if index not in self._children:
                    self._start(index)
        else:
            for index in range(wanted, self._processes):
                # The highest members go first; SIGTERM lets their jobs finish (warm shutdown).
                self._retiring.add(index)
                self._restart_at.pop(index, None)
                child = self._children.get(index)
                if child is not None and child.pid is not None and child.is_alive():
                    os.kill(child.pid, signal.SIGTERM)
        self._processes = wanted

    def _wait_for_change(self, read_fd: int) -> None:
        deadlines = list(self._restart_at.values())
        if self._scale is not None:
            deadlines.append(self._next_scale_at)
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        sentinels: list[int] = [child.sentinel for child in self._children.values()]
        wait([*sentinels, read_fd], timeout)
        try:
            while os.read(read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def _reap_dead_children(self) -> None:
        for index, child in list(self._children.items()):
            if child.is_alive():
                continue
            child.join()
            del self._children[index]
            if index in self._retiring:
                self._retiring.discard(index)
                log.info("worker_process_retired", index=index, pid=child.pid)
                child.close()
                continue
            uptime = time.monotonic() - self._started_at[index]
            quick_deaths = 0 if uptime >= STABLE_AFTER_S else self._quick_deaths.get(index, 0) + 1
            self._quick_deaths[index] = quick_deaths
            delay = min(self._restart_delay_s * 2 ** max(0, quick_deaths - 1), self._max_restart_delay_s)
            self._restart_at[index] = time.monotonic() + delay
            log.warning(
                "worker_process_died",
                index=index,
                pid=child.pid,
                exit=_describe_exit(child.exitcode),
                uptime_s=round(uptime, 1),
                restart_in_s=delay,
            )
            child.close()

    def _restart_due_children(self) -> None:
        now = time.monotonic()
        for index, due in list(self._restart_at.items()):
            if due <= now and self._stop_signal is None:
                del self._restart_at[index]
                self._start(index)
                log.info("worker_process_restarted", index=index, pid=self._children[index].pid)

    def _stop_children(self) -> None:
        self._restart_at.clear()
        for child in self._children.values():
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._grace_period_s
        while (alive := [child for child in self._children.values() if child.is_alive()]) and (
            remaining := deadline - time.monotonic()
        ) > 0:
            wait([child.sentinel for child in alive], remaining)
        children = list(self._children.values())
        self._children.clear()
        stuck = [child.pid for child in children if child.is_alive() and child.pid is not None]
        for pid in stuck:
            log.warning("worker_process_killed_after_grace", pid=pid, grace_period_s=self._grace_period_s)
            with contextlib.suppress(ProcessLookupError):  # it may have ended just now
                os.kill(pid, DUMP_STACKS)
        if stuck:
            time.sleep(_DUMP_WAIT_S)
        for child in children:
            if child.is_alive():
                child.kill()
            child.join()
            child.close()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"
