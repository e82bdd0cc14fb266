"""Liveness and readiness.

`/health` answers 200 while the process runs. `/ready` says whether this web process can do its job —
store what the webhook receives — and what it depends on is doing: 200 while the database answers
(a webhook can be acknowledged), 503 when it does not (Meta should deliver elsewhere or later). Redis
being down and an upstream's circuit being open do not make it unready — messages are stored and
wait — but they show as `degraded`, with the circuits open in any process of the service.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from adapters.postgres.pool import reachable as database_reachable
from adapters.redis.client import reachable as redis_reachable
from entrypoints.http.services import container

health = Blueprint("health", __name__)


@health.get("/health")
def liveness() -> ResponseReturnValue:
    return jsonify(status="ok")


@health.get("/ready")
def readiness() -> ResponseReturnValue:
    services = container()
    pool, client = services.postgres_pool(), services.redis()
    checks = {
        "database": "in_memory" if pool is None else "ok" if database_reachable(pool) else "down",
        "redis": "in_memory" if client is None else "ok" if redis_reachable(client) else "down",
    }
    circuits = services.circuit_board().open_circuits() if checks["redis"] != "down" else {}
    if checks["database"] == "down":
        status = "unavailable"
    elif checks["redis"] == "down" or circuits:
        status = "degraded"
    else:
        status = "ready"
    return jsonify(status=status, checks=checks, open_circuits=circuits), 503 if status == "unavailable" else 200
