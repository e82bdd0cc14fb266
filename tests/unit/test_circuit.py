"""The circuit breaker in front of an upstream: it opens on outages only, fails fast while open, and
says so on the board that the readiness answer reads."""

from __future__ import annotations

import time

import pytest

from adapters.circuit import Circuit, CircuitOpen, InMemoryCircuitBoard


class Down(Exception):
    """The upstream is down."""


class Refused(Exception):
    """The upstream answered: it refused this one request."""


def _circuit(board: InMemoryCircuitBoard | None = None, *, reset_after_s: float = 60.0) -> Circuit:
    return Circuit(
        "openai", failures=3, reset_after_s=reset_after_s, is_outage=lambda e: isinstance(e, Down), board=board
    )


def _fail(circuit: Circuit, error: Exception) -> None:
    def call() -> None:
        raise error

    with pytest.raises(type(error)):
        circuit.call(call)


def test_it_opens_after_the_outages_in_a_row_and_then_fails_at_once_without_calling() -> None:
    board = InMemoryCircuitBoard()
    circuit = _circuit(board)
    for _ in range(3):
        _fail(circuit, Down())
    calls: list[int] = []

    with pytest.raises(CircuitOpen, match="openai"):
        circuit.call(lambda: calls.append(1))

    assert calls == []
    assert not circuit.available
    assert board.open_circuits() == {"openai": 1}


def test_a_request_refused_for_its_own_reasons_proves_the_upstream_answers() -> None:
    circuit = _circuit()
    for _ in range(2):
        _fail(circuit, Down())

    _fail(circuit, Refused())
    _fail(circuit, Down())

    assert circuit.available  # two outages, then the count started again


def test_after_the_pause_a_call_goes_through_and_a_success_closes_it_on_the_board() -> None:
    board = InMemoryCircuitBoard()
    circuit = _circuit(board, reset_after_s=0.2)
    for _ in range(3):
        _fail(circuit, Down())
    time.sleep(0.3)

    assert circuit.available
    assert circuit.call(lambda: "answer") == "answer"
    assert circuit.state == "closed"
    assert board.open_circuits() == {}


def test_a_failed_trial_call_opens_it_again_at_once() -> None:
    circuit = _circuit(reset_after_s=0.2)
    for _ in range(3):
        _fail(circuit, Down())
    time.sleep(0.3)

    _fail(circuit, Down())

    assert not circuit.available
