"""The seed's worker design, for the benchmark's seed-literal configuration. Not part of the product.

    python -m bench.seed_literal_worker        # the environment of `mcagent worker`

WORKER_CONCURRENCY processes, each an RQ forking `Worker` on QUEUE_NAME: every job runs in a new
process (RQ's work horse) that builds its own container (pools, clients, connections) and then runs
the product's job function, `entrypoints.worker.jobs.drain_scopes`, limited to one scope per job (the
seed's one job per message). That per-job cost is what
`python -m bench.run --config both` sets against the product's worker, which builds its container once
per process and runs jobs on threads. One more process runs the product's recovery sweeper, so that
recovery behaves as under `mcagent worker`; the product's supervisor keeps them all (restart on death,
warm shutdown on SIGTERM).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from rq.job import Job
from rq.queue import Queue
from rq.worker import Worker

from adapters.redis.client import redis_client
from entrypoints.container import build_container
from entrypoints.logging_setup import configure_logging
from entrypoints.settings import ConfigError, Settings
from entrypoints.worker import jobs
from entrypoints.worker.main import run_sweeper
from entrypoints.worker.supervisor import Supervisor

log = logging.getLogger(__name__)

#: As the product's worker: RQ raises it for its blocking dequeue; this bounds the rest.
_SOCKET_TIMEOUT_S = 10.0
_MAINTENANCE_INTERVAL_S = 60


class SeedLiteralWorker(Worker):
    """RQ's fork-per-job worker; each work horse builds the container the product's worker builds once."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings = settings

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        # This process (the horse) never runs more than this one job: RQ ends it with os._exit.
        try:
            container = build_container(self._settings)
            container.init_resources()
        except Exception:
            log.exception("work_horse_start_failed")
            os._exit(1)
        jobs.bind(container)
        jobs.SCOPES_PER_DRAINER = 1
        super().main_work_horse(job, queue)


def _run_child(settings: Settings, redis_url: str, index: int) -> None:
    configure_logging(settings.log_level, settings.log_format)
    if index == 0:
        run_sweeper(settings)
        return
    connection = redis_client(redis_url, socket_timeout_s=_SOCKET_TIMEOUT_S)
    worker = SeedLiteralWorker(
        [settings.queue_name],
        connection=connection,
        maintenance_interval=_MAINTENANCE_INTERVAL_S,
        settings=settings,
    )
    worker.work()


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"bench.seed_literal_worker: {error}", file=sys.stderr)
        return 2
    assert settings.redis_url is not None  # from_env() requires it outside dev mode
    configure_logging(settings.log_level, settings.log_format)
    # Child 0 is the sweeper, as in `mcagent worker`; 1..WORKER_CONCURRENCY are the forking workers.
    redis_url = settings.redis_url
    Supervisor(lambda index: _run_child(settings, redis_url, index), settings.worker_concurrency + 1).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
