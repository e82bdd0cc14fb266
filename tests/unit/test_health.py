"""Liveness and readiness of the web process, on the embedded (in-memory) app."""

from __future__ import annotations

from entrypoints.container import build_container
from entrypoints.http.app import create_app
from entrypoints.settings import Settings


def test_liveness_and_readiness_of_the_embedded_app() -> None:
    client = create_app(build_container(Settings.from_env({}, dev=True))).test_client()

    assert client.get("/health").get_json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ready",
        "checks": {"database": "in_memory", "redis": "in_memory"},
        "open_circuits": {},
    }


def test_an_open_circuit_shows_as_degraded_but_ready() -> None:
    container = build_container(Settings.from_env({}, dev=True))
    client = create_app(container).test_client()
    container.circuit_board().opened("openai", 30.0)

    ready = client.get("/ready")

    assert ready.status_code == 200  # messages are still stored; they wait for OpenAI
    assert (ready.get_json()["status"], ready.get_json()["open_circuits"]) == ("degraded", {"openai": 1})
