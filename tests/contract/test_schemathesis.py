"""Every operation of the OpenAPI document, called with data schemathesis derives from it — valid and
invalid — on the real app backed by real PostgreSQL and Redis, as the admin, as the tenant whose paths
they are, and as another tenant. No answer may be a 5xx, and every answer must be in the document:
status, content type, headers and body. Deterministic (derandomized, a bounded number of examples).

Path parameters name the tenant of the run (generated ids would only ever find nothing), a conversation
or message id one of its own half of the time, and a body's `phone_number_id` names one of its channels
half of the time, so that creating things succeeds too.
Run by `tox -e api-contract`; `HYPOTHESIS_PROFILE=explore tox -e api-contract -- --timeout 0` tries 1,000
examples per operation and caller (about half an hour).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from application.ports.repositories import ConversationQuery, MessageQuery
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_user import CreateUserCommand
from domain.channels import ChannelType
from entrypoints.container import build_container
from entrypoints.http.openapi import openapi_document
from entrypoints.settings import Settings
from tests.conftest import REDIS_TEST_URL
from tests.support.inprocess import InProcessService
from tests.support.secrets import TEST_TOKEN_KEY

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Examples per operation and caller, valid and invalid: 44 operations x 3 callers, about 4 minutes on 2 cores.
EXAMPLES = 60 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else 1_000


ENV = {
    "WEBHOOK_SECRET": "contract-webhook-secret",
    "WEBHOOK_VERIFY_TOKEN": "contract-verify-token",
    "ADMIN_API_KEY": "contract-admin-key",
    "OFFLINE_RESPONDER": "true",
    "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
}

# Loaded when the module is collected (schemathesis' fixture-based loading does not work with this
# pytest); the document depends only on the settings' names, the same for the app below.
schema = schemathesis.openapi.from_dict(openapi_document(Settings.from_env(ENV, dev=True)))


@pytest.fixture(scope="module")
def service(database_url: str) -> Iterator[InProcessService]:
    settings = Settings.from_env({**ENV, "DATABASE_URL": database_url, "REDIS_URL": REDIS_TEST_URL})
    container = build_container(settings)
    container.init_resources()
    service = InProcessService(container)
    # A channel without an agent, so that creating an agent can succeed once.
    container.add_channel()(AddChannelCommand(service.user_id, ChannelType.WEBCHAT, "shop.example"))
    service.deliver_valid_text()
    service.drain()
    yield service
    container.shutdown_resources()


def _real_ids(case: Any, service: InProcessService) -> None:
    if case.path_parameters and "user_id" in case.path_parameters:
        case.path_parameters["user_id"] = service.user_id
    _real_path_ids(case, service)
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("phone_number_id"), str):
        channels = service.container.tenant_queries().channels(service.user_id)
        if channels and zlib.crc32(body["phone_number_id"].encode()) % 2:
            body["phone_number_id"] = channels[-1].phone_number_id


def _real_path_ids(case: Any, service: InProcessService) -> None:
    """Half of the agent, channel, conversation and message ids in paths name the tenant's own (the others
    find nothing): a PATCH, a DELETE, a retry and a person's reply must be within the document when they act
    too. A DELETE is given a real id only while two others of its kind remain, so that the other operations
    still find something to act on."""
    parameters = case.path_parameters or {}
    queries = service.container.tenant_queries()
    real = {
        "agent_id": lambda: [agent.agent_id for agent in queries.agents(service.user_id)],
        "phone_number_id": lambda: [channel.phone_number_id for channel in queries.channels(service.user_id)],
        "conversation_id": lambda: [
            conversation.conversation_id
            for conversation in queries.conversations(service.user_id, ConversationQuery(limit=10)).items
        ],
        "message_id": lambda: [
            message.message_id for message in queries.messages(service.user_id, MessageQuery(limit=100)).items
        ],
    }
    for name, found in real.items():
        if name in parameters and zlib.crc32(str(parameters[name]).encode()) % 2:
            ids = found()
            if ids and (case.method.upper() != "DELETE" or len(ids) > 2):
                parameters[name] = ids[zlib.crc32(str(parameters[name]).encode()) % len(ids)]


@pytest.fixture(scope="module")
def another_tenant(service: InProcessService) -> dict[str, str]:
    """The key header of a tenant the paths do not name: everything must be 404 to it, in the document."""
    other = service.container.create_user()(CreateUserCommand(email=f"other-{service.user_id}@example.com"))
    return {service.settings.api_key_header: other.api_key}


def _call(case: Any, service: InProcessService, key: dict[str, str]) -> None:
    _real_ids(case, service)
    case.call_and_validate(app=service.client.application, headers=key, checks=CHECKS)
    service.drain()


_deterministic = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@_deterministic
def test_as_the_admin_every_operation_answers_within_the_document(case: Any, service: InProcessService) -> None:
    _call(case, service, service.admin)


@schema.parametrize()
@_deterministic
def test_as_the_tenant_every_operation_answers_within_the_document(case: Any, service: InProcessService) -> None:
    _call(case, service, service.tenant)


@schema.parametrize()
@_deterministic
def test_as_another_tenant_every_operation_answers_within_the_document(
    case: Any, service: InProcessService, another_tenant: dict[str, str]
) -> None:
    _call(case, service, another_tenant)
