"""Signed webhooks in, replies out: gunicorn, RQ worker processes, Postgres, Redis, stand-ins for OpenAI and Meta.

The guarantees of the pipeline are shown here by breaking things: concurrent workers, redelivered
webhooks, a worker killed mid-call, Redis restarted empty, failing upstreams.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import redis
import requests

from tests.e2e.harness import System, Tenant, status_delivery, text_delivery, wait_for
from tests.support.standin_graph import GraphFailure, StandInGraph
from tests.support.standin_openai import Failure, StandInOpenAI, echo_reply

pytestmark = pytest.mark.timeout(180)


def _inputs_per_call(openai: StandInOpenAI) -> list[list[str]]:
    return [[item["content"] for item in body["input"]] for body in openai.calls("responses")]


def _transcript_inputs(openai: StandInOpenAI) -> list[str]:
    """The customer inputs the AI conversation holds, in order (calls that landed nothing are not in it)."""
    [conversation_id] = {str(body["conversation"]) for body in openai.calls("responses")}
    return [text for role, text in openai.transcript(conversation_id) if role == "user"]


def _reply_attempts(graph: StandInGraph) -> list[str]:
    """The text of every reply the service tried to send, accepted or not, in order of arrival."""
    return [r.body["text"]["body"] for r in graph.requests if isinstance(r.body, dict) and r.body.get("type") == "text"]


def test_a_signed_text_message_is_answered_on_whatsapp_and_recorded(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="1001", prompt_version="3")

    wamid = system.send_text(tenant, "15550001", "Hi, do you ship to Lisbon?")

    sent = graph_standin.wait_for_sent(1, timeout=20)
    assert sent[0].to == "+15550001"
    assert sent[0].text == echo_reply(["Hi, do you ship to Lisbon?"])
    assert sent[0].authorization == "Bearer token-1001"
    body = openai_standin.calls("responses")[0]
    assert body["prompt"] == {"id": "pmpt_1001", "version": "3"}
    assert body["input"] == [{"role": "user", "content": "Hi, do you ship to Lisbon?"}]
    assert len(openai_standin.calls("conversations")) == 1
    assert str(body["conversation"]).startswith("conv_")
    wait_for(lambda: [r.message_id for r in graph_standin.reads] == [wamid], timeout=5, what="mark-as-read")

    wait_for(lambda: len(system.messages(tenant)) == 2, timeout=5, what="both sides stored")
    outbound, inbound = system.messages(tenant)
    assert (inbound["direction"], inbound["status"], inbound["text"]) == (
        "inbound",
        "answered",
        "Hi, do you ship to Lisbon?",
    )
    assert (outbound["direction"], outbound["status"]) == ("outbound", "sent")
    assert outbound["platform_message_id"] == sent[0].message_id
    credits = system.credits(tenant)
    assert (credits["balance"], credits["reserved"]) == (999, 0)

    # Meta's status webhooks arrive out of order; the stored status never moves backwards.
    for status in ("read", "delivered", "sent"):
        answer = system.post_delivery(status_delivery("1001", sent[0].message_id, status, "15550001"))
        assert answer.status_code == 200
    assert system.messages(tenant)[0]["status"] == "read"


def test_bad_signature_is_refused_and_nothing_is_stored(
    make_system: Callable[..., System], openai_standin: StandInOpenAI
) -> None:
    system = make_system()
    system.start_web()
    tenant = system.provision(phone_number_id="1002")
    delivery = text_delivery("1002", "15550002", "hello", "wamid.sig")

    assert system.post_delivery(delivery, signature="sha256=" + "0" * 64).status_code == 401
    assert system.post_delivery(delivery, signature="").status_code == 401
    assert system.post_delivery(b"{not json", signature=None).status_code == 400
    assert system.messages(tenant) == []
    assert system.post_delivery({"object": "whatsapp_business_account", "entry": []}).status_code == 200


@pytest.mark.parametrize(("processes", "threads"), [("4", "1"), ("2", "16")], ids=["4x1", "2x16"])
def test_conversations_keep_their_order_across_concurrent_workers(
    make_system: Callable[..., System],
    openai_standin: StandInOpenAI,
    graph_standin: StandInGraph,
    processes: str,
    threads: str,
) -> None:
    """Twelve customers on two numbers write five messages each, all at once; many workers answer."""
    openai_standin.latency_ms = 60
    system = make_system(WORKER_CONCURRENCY=processes, WORKER_THREADS=threads)
    system.start_web()
    system.start_workers()
    tenants = [system.provision(phone_number_id="2001"), system.provision(phone_number_id="2002")]
    customers = [(tenants[i % 2], f"1555100{i:02d}") for i in range(12)]

    def customer_writes(tenant: object, customer: str) -> None:
        for n in range(5):
            system.send_text(tenant, customer, f"{customer} message {n}")  # type: ignore[arg-type]
            time.sleep(0.01)

    threads = [threading.Thread(target=customer_writes, args=pair) for pair in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    def everything_answered() -> bool:
        asked = [text for inputs in _inputs_per_call(openai_standin) for text in inputs]
        return len(asked) >= 60

    wait_for(everything_answered, timeout=60, what="all 60 messages asked to the AI")

    asked_by_customer: dict[str, list[str]] = defaultdict(list)
    for inputs in _inputs_per_call(openai_standin):
        customer = inputs[0].split()[0]
        assert all(text.split()[0] == customer for text in inputs), "one turn mixed two conversations"
        asked_by_customer[customer].extend(inputs)
    for _, customer in customers:
        assert asked_by_customer[customer] == [f"{customer} message {n}" for n in range(5)], "order or count broken"
    assert openai_standin.max_in_flight() == 1, "a conversation had two AI calls at once"

    # Each customer writes once more: a conversation's later turn is answered only after every earlier
    # one ended, so once these replies are out, nothing of the first sixty can still be on its way.
    for tenant, customer in customers:
        system.send_text(tenant, customer, f"{customer} last")
    wait_for(
        lambda: {echo_reply([f"{c} last"]) for _, c in customers} <= {m.text for m in graph_standin.sent},
        timeout=30,
        what="every customer's last message answered",
    )
    sent = graph_standin.sent
    assert len(sent) == len(openai_standin.calls("responses")), "a turn was replied to twice, or not at all"
    replies_by_customer: dict[str, list[str]] = defaultdict(list)
    for message in sent:
        replies_by_customer[message.to.lstrip("+")].append(message.text)
    for _, customer in customers:
        replied = [
            text for reply in replies_by_customer[customer] for text in reply.removeprefix("echo: ").split(" | ")
        ]
        assert replied == [f"{customer} message {n}" for n in range(5)] + [f"{customer} last"]


def test_phone_number_scope_processes_one_message_of_a_number_at_a_time_in_order(
    make_system: Callable[..., System], openai_standin: StandInOpenAI
) -> None:
    openai_standin.latency_ms = 30
    system = make_system(ORDERING_SCOPE="phone_number", WORKER_CONCURRENCY="3")
    system.start_web()
    tenant = system.provision(phone_number_id="3001")
    sent_order = []
    for n in range(9):
        customer = f"155520{n % 3}"
        system.send_text(tenant, customer, f"{customer} #{n}")
        sent_order.append(f"{customer} #{n}")
    system.start_workers()

    wait_for(lambda: sum(len(i) for i in _inputs_per_call(openai_standin)) >= 9, timeout=30, what="all asked")
    # One more message, asked only once the number's earlier turns are over: no call can come after it unseen.
    system.send_text(tenant, "1555200", "1555200 last")
    wait_for(lambda: ["1555200 last"] in _inputs_per_call(openai_standin), timeout=30, what="the last one asked")
    asked = [text for inputs in _inputs_per_call(openai_standin) for text in inputs]
    assert asked == [*sent_order, "1555200 last"]
    assert len(openai_standin.calls("responses")) == 10, (
        "interleaved customers of one number must not be coalesced across each other"
    )


def test_phone_number_scope_never_runs_two_ai_turns_of_a_number_at_once_under_contention(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    """Workers already running; three customers of each of two numbers write four messages each, all at once."""
    openai_standin.latency_ms = 80
    system = make_system(ORDERING_SCOPE="phone_number", WORKER_CONCURRENCY="3", WORKER_THREADS="8")
    system.start_web()
    system.start_workers()
    tenants = {number: system.provision(phone_number_id=number) for number in ("3101", "3102")}
    for number, tenant in tenants.items():  # the workers are up and answering before the rush
        system.send_text(tenant, f"1555{number}", f"{number} warm-up")
    graph_standin.wait_for_sent(2, timeout=30)

    customers = [(number, f"1555{number}{i}") for number in tenants for i in range(3)]
    # When each message was posted and when the webhook acknowledged it (monotonic seconds).
    posted: dict[str, float] = {}
    acknowledged: dict[str, float] = {}

    def customer_writes(number: str, customer: str) -> None:
        for n in range(4):
            text = f"{customer} #{n}"
            posted[text] = time.monotonic()
            system.send_text(tenants[number], customer, text)
            acknowledged[text] = time.monotonic()

    writers = [threading.Thread(target=customer_writes, args=pair) for pair in customers]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    # A last message per number: the number's turns run one after another, so once it is answered every
    # earlier turn of the number has ended and no call or reply can come after the checks unseen.
    for number, tenant in tenants.items():
        system.send_text(tenant, f"1555{number}", f"{number} last")
    wait_for(
        lambda: {echo_reply([f"{n} last"]) for n in tenants} <= {m.text for m in graph_standin.sent},
        timeout=60,
        what="each number's last message answered",
    )

    assert openai_standin.max_in_flight_per_prompt() == {"pmpt_3101": 1, "pmpt_3102": 1}, (
        "two AI turns of one number ran at the same time"
    )
    asked_by_number: dict[str, list[str]] = defaultdict(list)
    for body in openai_standin.calls("responses"):
        inputs = [item["content"] for item in body["input"]]
        assert len({text.split()[0] for text in inputs}) == 1, f"one turn mixed two conversations: {inputs}"
        asked_by_number[body["prompt"]["id"].removeprefix("pmpt_")].extend(inputs)
    for number in tenants:
        asked = asked_by_number[number]
        written = [text for text in posted if text.split()[0] in {c for n, c in customers if n == number}]
        assert sorted(asked) == sorted([f"{number} warm-up", *written, f"{number} last"]), "a message lost or repeated"
        position = {text: index for index, text in enumerate(asked)}
        for earlier in written:
            for later in written:
                if acknowledged[earlier] < posted[later]:
                    assert position[earlier] < position[later], (
                        f"{later!r} was answered before {earlier!r}, which the webhook had acknowledged before "
                        f"{later!r} was even sent"
                    )

    assert len(graph_standin.sent) == len(openai_standin.calls("responses")), "a turn replied to twice or not at all"
    replies_by_customer: dict[str, list[str]] = defaultdict(list)
    for message in graph_standin.sent:
        replies_by_customer[message.to.lstrip("+")].extend(message.text.removeprefix("echo: ").split(" | "))
    for _, customer in customers:
        assert replies_by_customer[customer] == [f"{customer} #{n}" for n in range(4)]


def test_two_conversations_are_answered_at_the_same_time(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    """By default the scope is the conversation: two customers of one number do not wait for each other."""
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="3201")
    hold = openai_standin.hold()
    system.send_text(tenant, "15553201", "first customer")
    system.send_text(tenant, "15553202", "second customer")

    hold.wait_arrived(2, timeout=20)  # both AI calls are under way at once
    assert openai_standin.max_in_flight_per_prompt() == {"pmpt_3201": 2}
    hold.release()

    sent = graph_standin.wait_for_sent(2, timeout=20)
    assert sorted((m.to, m.text) for m in sent) == [
        ("+15553201", echo_reply(["first customer"])),
        ("+15553202", echo_reply(["second customer"])),
    ]


def test_a_burst_of_pending_messages_becomes_one_ai_turn_and_one_charge(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="4001", credits=10)
    hold = openai_standin.hold()
    system.send_text(tenant, "15550040", "first")
    hold.wait_arrived(1, timeout=20)
    for text in ("second", "third", "fourth"):
        system.send_text(tenant, "15550040", text)
    hold.release()

    graph_standin.wait_for_sent(2, timeout=20)
    system.send_text(tenant, "15550040", "fifth")  # answered only after the burst's turn ended
    graph_standin.wait_for_sent(3, timeout=20)
    assert _inputs_per_call(openai_standin) == [["first"], ["second", "third", "fourth"], ["fifth"]]
    assert [m.text for m in graph_standin.sent] == [
        echo_reply(["first"]),
        echo_reply(["second", "third", "fourth"]),
        echo_reply(["fifth"]),
    ]
    credits = system.credits(tenant)
    assert (credits["balance"], credits["reserved"]) == (7, 0)
    charges = system.charges(tenant)
    assert [c["amount"] for c in charges] == [-1, -1, -1]
    assert len({c["turn_id"] for c in charges}) == 3, "one charge per turn"


def test_a_credit_is_held_while_the_ai_answers_and_charged_once_it_has(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    # No balance read before the turn: a cached read could still show the held credit as available
    # (the cache is invalidated on charge, release and top-up, not on the hold; see architecture.md).
    tenant = system.provision(phone_number_id="4101", credits=5)
    hold = openai_standin.hold()
    system.send_text(tenant, "15550041", "how much is it?")
    hold.wait_arrived(1, timeout=20)

    during = system.credits(tenant)
    assert (during["balance"], during["reserved"], during["available"]) == (5, 1, 4)
    assert system.charges(tenant) == []
    hold.release()

    graph_standin.wait_for_sent(1, timeout=20)
    after = system.credits(tenant)
    assert (after["balance"], after["reserved"], after["available"]) == (4, 0, 4)
    charges = system.charges(tenant)
    assert [(c["amount"], c["balance_after"]) for c in charges] == [(-1, 4)]
    assert charges[0]["turn_id"] is not None


def test_the_same_message_delivered_twice_even_concurrently_is_processed_once(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="5001")
    delivery = text_delivery("5001", "15550050", "only once please", "wamid.twice")
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(system.post_delivery(delivery).status_code)) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 6

    graph_standin.wait_for_sent(1, timeout=20)
    assert system.post_delivery(delivery).status_code == 200  # Meta redelivers later too
    # Had the redelivery been stored, it would be pending ahead of this one and asked before or with it.
    system.send_text(tenant, "15550050", "and this one")
    graph_standin.wait_for_sent(2, timeout=20)
    assert _inputs_per_call(openai_standin) == [["only once please"], ["and this one"]]
    assert [m.text for m in graph_standin.sent] == [echo_reply(["only once please"]), echo_reply(["and this one"])]
    inbound = [m["text"] for m in system.messages(tenant) if m["direction"] == "inbound"]
    assert inbound == ["and this one", "only once please"]


def _deaths_by_sigkill(system: System) -> set[int]:
    """Pids of the worker processes the supervisor found killed by SIGKILL (from its JSON log)."""
    assert system.workers is not None
    deaths: set[int] = set()
    for line in system.workers.log().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "worker_process_died" and event.get("exit") == "killed by SIGKILL":
            deaths.add(int(event["pid"]))
    return deaths


def _is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    "default_timings",
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["shortened-timings", "default-timings"],
)
def test_a_worker_killed_mid_ai_call_leaves_the_message_answered_exactly_once(
    make_system: Callable[..., System],
    openai_standin: StandInOpenAI,
    graph_standin: StandInGraph,
    default_timings: bool,
) -> None:
    """With the harness's short lock and recovery timings, and with the production defaults."""
    system = make_system(default_timings=default_timings, WORKER_CONCURRENCY="2")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="6001")
    hold = openai_standin.hold()
    system.send_text(tenant, "15550060", "are you there?")
    hold.wait_arrived(1, timeout=20)

    workers = system.workers
    assert workers is not None
    killed = workers.children()
    assert len(killed) == 4, f"expected two RQ workers, the background worker and the sweeper, found {killed}"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)  # every worker and the sweeper, mid-job, no goodbye
    killed_at = time.monotonic()
    openai_standin.hold().release()  # later calls go through; the held one answers a dead socket (and lands)
    hold.release()

    wait_for(lambda: _deaths_by_sigkill(system) >= set(killed), timeout=10, what="the supervisor to see the kills")
    assert all(_is_gone(pid) for pid in killed)
    wait_for(
        lambda: len(restarted := workers.children()) == 4 and not set(restarted) & set(killed),
        timeout=10,
        what="four new worker processes",
    )

    # The lock of the dead worker (and the sweeper's leadership) expire after LOCK_TTL_MS, the turn is
    # stalled after RECOVERY_AFTER_MS, and the sweep that queues it again runs every RECOVERY_INTERVAL_MS.
    bound_s = (
        max(system.setting_ms("LOCK_TTL_MS", 30_000), system.setting_ms("RECOVERY_AFTER_MS", 30_000))
        + system.setting_ms("RECOVERY_INTERVAL_MS", 10_000)
    ) / 1000 + 5
    graph_standin.wait_for_sent(1, timeout=bound_s + 10)
    recovered_in = time.monotonic() - killed_at
    assert recovered_in < bound_s, f"the conversation was blocked for {recovered_in:.1f} s (bound {bound_s:.1f} s)"
    assert [m.text for m in graph_standin.sent] == [echo_reply(["are you there?"])]
    assert _inputs_per_call(openai_standin) == [["are you there?"]], (
        "the resumed worker asked OpenAI again instead of taking the reply that had landed"
    )
    assert openai_standin.calls("items"), "the resumed worker did not look for a reply that had landed"
    charges = system.charges(tenant)
    assert [c["amount"] for c in charges] == [-1], "the resumed turn must be charged exactly once"

    system.send_text(tenant, "15550060", "thanks")
    graph_standin.wait_for_sent(2, timeout=20)
    assert [m.text for m in graph_standin.sent] == [echo_reply(["are you there?"]), echo_reply(["thanks"])]
    assert _inputs_per_call(openai_standin) == [["are you there?"], ["thanks"]]
    charges = system.charges(tenant)
    assert len(charges) == 2 and len({c["turn_id"] for c in charges}) == 2
    credits = system.credits(tenant)
    assert (credits["balance"], credits["reserved"]) == (998, 0)


def test_redis_restarted_empty_after_the_webhook_answered_loses_nothing(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    tenant = system.provision(phone_number_id="7001")
    system.send_text(tenant, "15550070", "hello before the crash")
    system.send_text(tenant, "15550071", "me too")

    system.redis.restart_empty()  # the queued jobs and every lock are gone
    system.start_workers()

    sent = graph_standin.wait_for_sent(2, timeout=30)
    assert sorted(m.text for m in sent) == sorted([echo_reply(["hello before the crash"]), echo_reply(["me too"])])
    # A later message of each conversation is answered only after everything before it there ended.
    system.send_text(tenant, "15550070", "still there?")
    system.send_text(tenant, "15550071", "me again")
    graph_standin.wait_for_sent(4, timeout=30)
    assert sorted(m.text for m in graph_standin.sent) == sorted(
        [
            echo_reply(["hello before the crash"]),
            echo_reply(["me too"]),
            echo_reply(["still there?"]),
            echo_reply(["me again"]),
        ]
    )
    assert sorted(map(tuple, _inputs_per_call(openai_standin))) == sorted(
        [("hello before the crash",), ("me too",), ("still there?",), ("me again",)]
    )


def _conversation_locks(system: System) -> dict[bytes, bytes | None]:
    """Every conversation lock in Redis, with its holder's token."""
    client = redis.Redis.from_url(system.redis.url)
    try:
        return {key: client.get(key) for key in client.scan_iter("mcagent:lock:conversation:*")}
    finally:
        client.close()


def _inbound_statuses(system: System, tenant: Tenant) -> list[tuple[str, str]]:
    """(text, status) of the tenant's inbound messages, oldest first."""
    return [(m["text"], m["status"]) for m in reversed(system.messages(tenant)) if m["direction"] == "inbound"]


def test_redis_restarted_empty_while_a_turn_is_in_flight_loses_nothing_and_answers_nothing_twice(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    """The workers are running, one holds the conversation's lock and waits for OpenAI, a second message
    waits behind it; Redis comes back empty (locks, queued jobs, marks gone) and the call then returns.

    RECOVERY_AFTER_MS is raised above the harness's 1.5 s so that the held call stays well inside it, as a
    real call of 1-3 s does against the 30 s default; a call outlasting it is the next test."""
    system = make_system(WORKER_CONCURRENCY="2", RECOVERY_AFTER_MS="5000")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="7101", credits=10)
    hold = openai_standin.hold()
    system.send_text(tenant, "15550071", "first, in flight")
    hold.wait_arrived(1, timeout=20)
    system.send_text(tenant, "15550071", "second, waiting behind it")
    held = _conversation_locks(system)
    assert held, "the turn under way holds its conversation's lock"

    system.redis.restart_empty()
    # The holder's lock is gone (a worker that had taken the second message's job may take a new one).
    assert not set(held.items()) & set(_conversation_locks(system).items())
    openai_standin.hold().release()
    hold.release()

    graph_standin.wait_for_sent(2, timeout=30)
    system.send_text(tenant, "15550071", "third, after it all")  # the conversation moves on
    graph_standin.wait_for_sent(3, timeout=30)
    assert [m.text for m in graph_standin.sent] == [
        echo_reply(["first, in flight"]),
        echo_reply(["second, waiting behind it"]),
        echo_reply(["third, after it all"]),
    ]
    assert _reply_attempts(graph_standin) == [m.text for m in graph_standin.sent]
    # Each message reached the AI conversation once. (A worker that took the second message's job just
    # before the restart may take the fresh lock and resume the first turn: its call meets OpenAI's
    # conversation lock, lands nothing, and the reply of the first call is adopted.)
    assert _transcript_inputs(openai_standin) == [
        "first, in flight",
        "second, waiting behind it",
        "third, after it all",
    ]
    assert [status for _, status in _inbound_statuses(system, tenant)] == ["answered"] * 3
    charges = system.charges(tenant)
    assert len(charges) == 3 and len({c["turn_id"] for c in charges}) == 3
    credits = system.credits(tenant)
    assert (credits["balance"], credits["reserved"]) == (7, 0)


def test_a_turn_whose_ai_call_outlasts_the_recovery_delay_after_redis_emptied_is_answered_once(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    """Redis comes back empty while a turn waits for OpenAI, and the call is still running when the sweep
    finds the turn untouched for RECOVERY_AFTER_MS with no lock on it, so another worker resumes it.

    Both workers now work on one turn. The state machine keeps them from recording or sending it twice;
    the customer must still get exactly one answer to each message, from whichever worker."""
    system = make_system(WORKER_CONCURRENCY="2")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="7201", credits=10)
    hold = openai_standin.hold()
    system.send_text(tenant, "15550072", "first, in flight")
    hold.wait_arrived(1, timeout=20)
    system.send_text(tenant, "15550072", "second, waiting behind it")
    system.redis.restart_empty()

    # The resumed turn looks for a reply that landed before asking again: that is the takeover.
    openai_standin.wait_for_calls("items", 1, timeout=system.recovery_cycle_s + 10)
    time.sleep(1.0)  # the first call runs on a while longer, as a slow OpenAI answer would
    openai_standin.hold().release()
    hold.release()

    wait_for(
        lambda: all(status in ("answered", "failed") for _, status in _inbound_statuses(system, tenant)),
        timeout=30,
        what="both messages settled",
    )
    system.send_text(tenant, "15550072", "third, after it all")
    wait_for(
        lambda: _inbound_statuses(system, tenant)[-1][1] in ("answered", "failed"),
        timeout=30,
        what="the third message settled",
    )
    assert _inbound_statuses(system, tenant) == [
        ("first, in flight", "answered"),
        ("second, waiting behind it", "answered"),
        ("third, after it all", "answered"),
    ], [(m["text"], m["status"], m["failure_reason"]) for m in system.messages(tenant)]
    assert [m.text for m in graph_standin.sent] == [
        echo_reply(["first, in flight"]),
        echo_reply(["second, waiting behind it"]),
        echo_reply(["third, after it all"]),
    ]
    assert _reply_attempts(graph_standin) == [m.text for m in graph_standin.sent]
    charges = system.charges(tenant)
    assert len(charges) == 3 and len({c["turn_id"] for c in charges}) == 3


def test_credits_never_go_negative_and_without_credits_nothing_is_asked_or_sent(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system(WORKER_CONCURRENCY="4")
    system.start_web()
    tenant = system.provision(phone_number_id="8001", credits=2)
    for n in range(6):
        system.send_text(tenant, f"155508{n:02d}", f"customer {n} asks")
    system.start_workers()

    wait_for(
        lambda: (
            all(
                m["status"] in ("answered", "failed")
                for m in system.messages(tenant, status=None)
                if m["direction"] == "inbound"
            )
            and len([m for m in system.messages(tenant) if m["direction"] == "inbound"]) == 6
        ),
        timeout=30,
        what="every message settled",
    )
    inbound = [m for m in system.messages(tenant) if m["direction"] == "inbound"]
    assert sorted(m["status"] for m in inbound) == ["answered"] * 2 + ["failed"] * 4
    assert {m["failure_reason"] for m in inbound if m["status"] == "failed"} == {"insufficient_credits"}
    assert len(openai_standin.calls("responses")) == 2
    graph_standin.wait_for_sent(2, timeout=10)
    credits = system.credits(tenant)
    assert (credits["balance"], credits["reserved"]) == (0, 0)

    # With credits again, every customer writes once more. A refused message left pending would be asked
    # with (or before) its customer's new one; once all six are answered, none was.
    assert system.api("POST", f"/users/{tenant.user_id}/credits", json={"amount": 6}).status_code == 201
    for n in range(6):
        system.send_text(tenant, f"155508{n:02d}", f"customer {n} again")
    graph_standin.wait_for_sent(8, timeout=30)
    later = _inputs_per_call(openai_standin)[2:]
    assert sorted(later) == [[f"customer {n} again"] for n in range(6)]
    assert len(graph_standin.sent) == 8
    assert {m["failure_reason"] for m in system.messages(tenant) if m["status"] == "failed"} == {"insufficient_credits"}
    credits = system.credits(tenant)
    assert (credits["balance"], credits["reserved"]) == (0, 0)


def test_openai_failures_are_retried_in_order_and_a_turn_that_keeps_failing_waits_instead_of_failing(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system(OPENAI_MAX_RETRIES="3")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9001")

    openai_standin.fail_next(Failure.rate_limited(), Failure.server_error(), Failure.conversation_locked())
    system.send_text(tenant, "15550090", "first, after three failures")
    graph_standin.wait_for_sent(1, timeout=30)
    assert graph_standin.sent[0].text == echo_reply(["first, after three failures"])

    openai_standin.fail_next(*[Failure.server_error()] * 4)  # more than the retries of one job
    system.send_text(tenant, "15550090", "second, answered once OpenAI recovers")
    openai_standin.wait_for_calls("responses", 4 + 4, timeout=30)  # the first turn's 4 calls, the second's 4 failures
    system.send_text(tenant, "15550090", "third, waits behind it")

    graph_standin.wait_for_sent(3, timeout=30)
    assert [m.text for m in graph_standin.sent] == [
        echo_reply(["first, after three failures"]),
        echo_reply(["second, answered once OpenAI recovers"]),
        echo_reply(["third, waits behind it"]),
    ]
    assert [status for _, status in _inbound_statuses(system, tenant)] == ["answered"] * 3
    assert system.credits(tenant)["balance"] == 997  # charged once per answered turn, never for the waiting


def test_a_request_openai_refuses_fails_its_message_with_the_reason_and_the_next_is_answered(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9002")

    openai_standin.fail_next(Failure.bad_request("Invalid prompt: pmpt_9002 was not found."))
    system.send_text(tenant, "15550091", "first, refused")
    wait_for(lambda: _inbound_statuses(system, tenant) == [("first, refused", "failed")], timeout=30, what="failure")
    system.send_text(tenant, "15550091", "second, answered")
    graph_standin.wait_for_sent(1, timeout=30)

    failed = next(m for m in system.messages(tenant) if m["status"] == "failed")
    assert failed["failure_reason"].startswith("ai_failed:") and "pmpt_9002" in failed["failure_reason"]
    assert [m.text for m in graph_standin.sent] == [echo_reply(["second, answered"])]
    assert system.credits(tenant)["balance"] == 999


def test_an_openai_outage_delays_answers_without_failing_or_reordering_them(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    """OpenAI answers 503 to everything for a few seconds while three customers write: the circuit opens,
    turns stop being started or charged, and every message is answered in order once OpenAI is back."""
    system = make_system(WORKER_CONCURRENCY="2", CIRCUIT_FAILURES="3", CIRCUIT_RESET_MS="1000")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9003", credits=100)
    openai_standin.outage = Failure(503, message="The service is temporarily unavailable.")
    customers = [f"155509{n:02d}" for n in range(3)]
    for round_ in range(3):
        for customer in customers:
            system.send_text(tenant, customer, f"{customer} #{round_}")
        time.sleep(0.5)

    wait_for(lambda: _ready(system)["open_circuits"].get("openai", 0) > 0, timeout=30, what="the circuit opened")
    assert _ready(system)["status"] == "degraded"
    during = system.credits(tenant)
    openai_standin.outage = None

    wait_for(lambda: len(_answered_inputs(graph_standin)) == 9, timeout=60, what="every message answered")
    for customer in customers:
        answered = [text for text in _answered_inputs(graph_standin) if text.startswith(customer)]
        assert answered == [f"{customer} #{n}" for n in range(3)], "order broken"
    assert len(_answered_inputs(graph_standin)) == len(set(_answered_inputs(graph_standin))), "answered twice"
    assert [status for _, status in _inbound_statuses(system, tenant)] == ["answered"] * 9
    assert during["reserved"] <= len(customers)  # at most the turns that were under way hold a credit
    credits = system.credits(tenant)
    assert credits["reserved"] == 0 and credits["balance"] == 100 - len(system.charges(tenant))
    wait_for(lambda: _ready(system)["status"] == "ready", timeout=30, what="ready again")


def test_a_graph_outage_delays_replies_and_each_goes_out_once_when_it_is_back(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    """Meta answers "service temporarily unavailable" (131016: the message was not taken) to every call:
    replies wait, pending, and each goes out once when the Graph API is back."""
    system = make_system(CIRCUIT_FAILURES="3", CIRCUIT_RESET_MS="1000", MARK_AS_READ="false")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9004")
    graph_standin.outage = GraphFailure.unavailable()
    for n in range(3):
        system.send_text(tenant, f"155509{40 + n}", f"customer {n} asks")

    wait_for(lambda: _ready(system)["open_circuits"].get("graph", 0) > 0, timeout=30, what="the circuit opened")
    wait_for(
        lambda: [m["status"] for m in system.messages(tenant) if m["direction"] == "outbound"] == ["pending"] * 3,
        timeout=30,
        what="every reply back to pending, none failed",
    )
    graph_standin.outage = None

    sent = graph_standin.wait_for_sent(3, timeout=60)
    assert sorted(m.text for m in sent) == sorted(echo_reply([f"customer {n} asks"]) for n in range(3))
    system.send_text(tenant, "15550940", "and one more")  # the pipeline moved past: nothing else is on its way
    graph_standin.wait_for_sent(4, timeout=30)
    assert len(graph_standin.sent) == 4
    assert len(openai_standin.calls("responses")) == 4  # the waiting was on the send, never on the AI again
    wait_for(
        lambda: [m["status"] for m in system.messages(tenant) if m["direction"] == "outbound"] == ["sent"] * 4,
        timeout=10,
        what="every reply stored as sent",
    )


def _ready(system: System) -> dict[str, Any]:
    answer = system.checked(requests.get(f"{system.base_url}/ready", timeout=5))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _answered_inputs(graph: StandInGraph) -> list[str]:
    return [text for message in graph.sent for text in message.text.removeprefix("echo: ").split(" | ")]


def test_a_refused_send_is_stored_with_metas_code_and_not_retried(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9101")
    # The first Graph call of a turn is the read receipt, the second the reply.
    graph_standin.fail_next(GraphFailure.server_error(), GraphFailure.reengagement())
    system.send_text(tenant, "15550091", "hello")

    wait_for(lambda: any(m["direction"] == "outbound" for m in system.messages(tenant)), timeout=20, what="reply")
    wait_for(lambda: system.messages(tenant)[0]["status"] == "failed", timeout=10, what="failure stored")
    outbound = system.messages(tenant)[0]
    assert (outbound["failure_code"], outbound["direction"]) == ("131047", "outbound")
    # The conversation's next turn goes out only after the failed one ended: a retry would come before it.
    system.send_text(tenant, "15550091", "hello again")
    graph_standin.wait_for_sent(1, timeout=20)
    assert _reply_attempts(graph_standin) == [echo_reply(["hello"]), echo_reply(["hello again"])], (
        "a failed send must not be retried"
    )


@pytest.mark.parametrize(
    ("failure", "code", "reason"),
    [
        (GraphFailure.server_error(), "131000", "(#131000) Something went wrong"),
        (GraphFailure.slow(delay_s=5.0), None, "the Graph API did not answer within 1 s"),
        (GraphFailure.dropped(), None, "could not reach the Graph API"),
    ],
    ids=["http-500", "timeout", "dropped-connection"],
)
def test_a_reply_whose_send_fails_is_stored_as_failed_and_never_sent_again(
    make_system: Callable[..., System],
    openai_standin: StandInOpenAI,
    graph_standin: StandInGraph,
    failure: GraphFailure,
    code: str | None,
    reason: str,
) -> None:
    """The reply's own send fails (no read receipt: MARK_AS_READ=false keeps the send the only Graph call)."""
    system = make_system(MARK_AS_READ="false", GRAPH_TIMEOUT="1000")
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9111")
    graph_standin.fail_next(failure)
    system.send_text(tenant, "15550911", "hello")

    wait_for(
        lambda: [m["status"] for m in system.messages(tenant) if m["direction"] == "outbound"] == ["failed"],
        timeout=20,
        what="the failed send stored",
    )
    outbound = system.messages(tenant)[0]
    assert outbound["text"] == echo_reply(["hello"])
    assert outbound["failure_code"] == code
    assert outbound["failure_reason"].startswith(reason), outbound["failure_reason"]
    assert outbound["platform_message_id"] is None
    assert _reply_attempts(graph_standin) == [echo_reply(["hello"])]
    assert graph_standin.reads == []

    # The conversation's next turn is sent only after the failed one ended: a retry would come before it.
    system.send_text(tenant, "15550911", "hello again")
    graph_standin.wait_for_sent(1, timeout=20)
    assert _reply_attempts(graph_standin) == [echo_reply(["hello"]), echo_reply(["hello again"])], (
        "a failed send must never be attempted again"
    )
    wait_for(
        lambda: [m["status"] for m in system.messages(tenant) if m["direction"] == "outbound"] == ["sent", "failed"],
        timeout=10,
        what="the second reply stored as sent, the first still failed",
    )
    assert len(system.charges(tenant)) == 2  # the AI work was done: a failed send is still charged


def test_a_reply_outside_the_24_hour_window_is_not_sent(
    make_system: Callable[..., System], openai_standin: StandInOpenAI, graph_standin: StandInGraph
) -> None:
    system = make_system()
    system.start_web()
    system.start_workers()
    tenant = system.provision(phone_number_id="9201")
    system.send_text(tenant, "15550092", "sent yesterday", sent_at=time.time() - 25 * 3600)

    wait_for(lambda: system.messages(tenant)[0]["status"] == "failed", timeout=20, what="refusal stored")
    assert system.messages(tenant)[0]["failure_reason"] == "outside_service_window"
    # The customer writes today: that opens the window again, and only the new message is answered.
    system.send_text(tenant, "15550092", "written today")
    graph_standin.wait_for_sent(1, timeout=20)
    assert _inputs_per_call(openai_standin) == [["written today"]]
    assert [m.text for m in graph_standin.sent] == [echo_reply(["written today"])]
    assert [m["status"] for m in system.messages(tenant) if m["direction"] == "inbound"] == ["answered", "failed"]
