"""The webhook route on the embedded container: handshake, signature, and what a delivery stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from flask.testing import FlaskClient

from adapters.memory.services import InMemoryJobQueue
from application.ports.repositories import MessageQuery
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from domain.channels import ChannelType
from domain.messages import MessageStatus
from entrypoints.container import Container, build_container
from entrypoints.http.app import create_app
from entrypoints.http.signature import sign
from entrypoints.settings import Settings
from tests.unit.fakes import RefusingMessageStore

FIXTURES = Path(__file__).parent / "fixtures" / "whatsapp"
NUMBERS = ("106540352242922", "106540352242999")


@pytest.fixture
def container() -> Container:
    container = build_container(Settings.from_env({}, dev=True))
    user = container.create_user()(CreateUserCommand(email="shop@example.com")).user
    for number in NUMBERS:
        container.add_channel()(
            AddChannelCommand(user.user_id, ChannelType.WHATSAPP, "+15550100", "token", phone_number_id=number)
        )
        container.create_agent()(CreateAgentCommand(user.user_id, "Agent", "pmpt_a", number))
    return container


@pytest.fixture
def client(container: Container) -> Iterator[FlaskClient]:
    yield create_app(container).test_client()


def _post(client: FlaskClient, raw: bytes, signature: str | None = None) -> Any:
    secret = Settings.from_env({}, dev=True).webhook_secret
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature or sign(raw, secret)}
    return client.post("/webhook/meta", data=raw, headers=headers)


def _stored(container: Container) -> list[Any]:
    with container.uow()() as uow:
        user = next(iter(container.memory_store().tables.users))
        return list(uow.messages.list(user, MessageQuery(limit=100)).items)


def test_handshake_echoes_the_challenge_only_for_the_right_token(client: FlaskClient) -> None:
    ok = client.get("/webhook/meta?hub.mode=subscribe&hub.verify_token=dev-verify-token&hub.challenge=1158201444")
    assert (ok.status_code, ok.get_data(as_text=True)) == (200, "1158201444")
    wrong = client.get("/webhook/meta?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")
    assert wrong.status_code == 403
    assert wrong.json["error"]["code"] == "verification_failed"


def test_a_delivery_with_a_bad_or_missing_signature_is_refused_and_nothing_is_stored(
    client: FlaskClient, container: Container
) -> None:
    raw = (FIXTURES / "text.json").read_bytes()
    assert _post(client, raw, signature="sha256=" + "ab" * 32).status_code == 401
    assert client.post("/webhook/meta", data=raw, headers={"Content-Type": "application/json"}).status_code == 401
    assert _stored(container) == []


def test_the_signature_is_checked_over_the_raw_bytes_of_non_ascii_text(
    client: FlaskClient, container: Container
) -> None:
    raw = (FIXTURES / "text_non_ascii.json").read_bytes()
    assert _post(client, raw).status_code == 200
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    assert _post(client, reserialised, signature=sign(raw, "dev-webhook-secret")).status_code == 401


def test_malformed_json_is_a_400_with_the_one_error_body(client: FlaskClient) -> None:
    answer = _post(client, b'{"object": "whatsapp_business_account", "entry": [')
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "malformed_json"


def test_every_entry_change_and_message_of_a_delivery_is_handled(client: FlaskClient, container: Container) -> None:
    answer = _post(client, (FIXTURES / "multi_entry.json").read_bytes())

    assert answer.status_code == 200
    stored = _stored(container)
    assert len(stored) == 5
    assert sorted(str(m.status) for m in stored) == ["received"] * 4 + ["skipped"]
    assert {m.phone_number_id for m in stored} == set(NUMBERS)
    queue = container.queue()
    assert isinstance(queue, InMemoryJobQueue)
    # Four answerable messages in three conversations: one waiting job per conversation covers them.
    assert sorted(queue.enqueued) == ["conversation:1", "conversation:2", "conversation:3"]


@pytest.mark.parametrize(
    "fixture",
    sorted(path.name for path in FIXTURES.glob("*.json")),
)
def test_every_documented_shape_is_answered_200(client: FlaskClient, fixture: str) -> None:
    assert _post(client, (FIXTURES / fixture).read_bytes()).status_code == 200


def test_a_redelivered_message_is_stored_once(client: FlaskClient, container: Container) -> None:
    raw = (FIXTURES / "text.json").read_bytes()
    first, second = _post(client, raw), _post(client, raw)
    assert first.json["outcomes"] == ["queued"] and second.json["outcomes"] == ["duplicate"]
    assert len(_stored(container)) == 1


def test_an_unknown_number_is_ignored_with_200(client: FlaskClient, container: Container) -> None:
    payload = json.loads((FIXTURES / "text.json").read_bytes())
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"
    answer = _post(client, json.dumps(payload).encode())
    assert (answer.status_code, answer.json["outcomes"]) == (200, ["unknown_channel"])
    assert _stored(container) == []


def test_an_image_is_recorded_and_skipped_with_its_reason(client: FlaskClient, container: Container) -> None:
    assert _post(client, (FIXTURES / "image.json").read_bytes()).status_code == 200
    (image,) = _stored(container)
    assert (image.status, image.failure_reason) == (MessageStatus.SKIPPED, "unsupported_type:image")


def _refusing_store(container: Container, **behaviour: Any) -> RefusingMessageStore:
    store = RefusingMessageStore(container.message_store(), **behaviour)
    container.message_store.override(providers.Object(store))
    return store


def test_a_message_the_database_refuses_is_kept_aside_and_the_rest_of_its_delivery_is_stored(
    container: Container,
) -> None:
    _refusing_store(container, refused={"wamid.MULTI0002"})
    raw = (FIXTURES / "multi_entry.json").read_bytes()

    answer = _post(create_app(container).test_client(), raw)

    assert answer.status_code == 200
    assert answer.json["outcomes"].count("rejected") == 1
    assert "wamid.MULTI0002" not in {m.platform_message_id for m in _stored(container)}
    assert len(_stored(container)) == 4
    [kept] = container.rejected_deliveries().recorded
    assert (kept.platform_message_id, kept.body) == ("wamid.MULTI0002", raw)
    assert kept.reason == "not_storable: 54000 index row requires 10016 bytes, maximum size is 8191"


def test_a_delivery_is_answered_503_when_the_database_is_away_so_that_meta_delivers_it_again(
    container: Container,
) -> None:
    _refusing_store(container, down=True)

    answer = _post(create_app(container).test_client(), (FIXTURES / "text.json").read_bytes())

    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "storage_unavailable"
    assert container.rejected_deliveries().recorded == []


def test_a_signed_body_that_is_not_json_is_a_400_and_kept_as_it_came(client: FlaskClient, container: Container) -> None:
    raw = b'{"object": "whatsapp_business_account", "entry": [\x00\xff'

    answer = _post(client, raw)

    assert (answer.status_code, answer.json["error"]["code"]) == (400, "malformed_json")
    [kept] = container.rejected_deliveries().recorded
    assert kept.reason.startswith("malformed_json: ") and kept.body == raw
    assert kept.correlation_id == answer.headers["x-correlation-id"]


def test_a_body_too_deeply_nested_to_read_is_a_400_not_a_crash(client: FlaskClient) -> None:
    answer = _post(client, b'{"object": "whatsapp_business_account", "entry": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")

    assert (answer.status_code, answer.json["error"]["code"]) == (400, "malformed_json")


def test_json_that_is_not_a_delivery_is_a_400_naming_the_field_and_kept(
    client: FlaskClient, container: Container
) -> None:
    answer = _post(client, b'{"object": "whatsapp_business_account", "entry": 5}')

    assert (answer.status_code, answer.json["error"]["field"]) == (400, "$.entry")
    assert [kept.reason.split(":")[0] for kept in container.rejected_deliveries().recorded] == ["malformed_delivery"]


def test_nul_and_lone_surrogates_are_stored_as_replacement_characters(
    client: FlaskClient, container: Container
) -> None:
    payload = json.loads((FIXTURES / "text.json").read_bytes())
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "color\x00?\ud800"

    answer = _post(client, json.dumps(payload).encode())

    assert (answer.status_code, answer.json["outcomes"]) == (200, ["queued"])
    [stored] = _stored(container)
    assert stored.text == "color\ufffd?\ufffd"


def test_a_message_over_a_bound_is_kept_aside_and_the_rest_of_its_delivery_is_stored(
    client: FlaskClient, container: Container
) -> None:
    payload = json.loads((FIXTURES / "multi_entry.json").read_bytes())
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "x" * 70_000
    raw = json.dumps(payload).encode()

    answer = _post(client, raw)

    assert (answer.status_code, answer.json["received"], answer.json["rejected"]) == (200, 4, 1)
    assert len(_stored(container)) == 4
    [kept] = container.rejected_deliveries().recorded
    assert (kept.platform_message_id, kept.body) == ("wamid.MULTI0001", raw)
    assert kept.reason == "too_long:text (70000 characters, at most 65536)"


def test_a_body_larger_than_any_meta_sends_is_a_413_with_the_one_error_body(client: FlaskClient) -> None:
    answer = _post(client, b'{"object": "instagram", "entry": [], "padding": "' + b"x" * (4 * 1024 * 1024) + b'"}')

    assert (answer.status_code, answer.json["error"]["code"]) == (413, "request_entity_too_large")
