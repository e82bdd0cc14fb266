"""Which AI the container wires: OpenAI with a key, the labelled offline responder only where allowed."""

from __future__ import annotations

from datetime import timedelta

from adapters.openai.offline import OFFLINE_LABEL, OfflineResponder
from adapters.openai.responder import OpenAIResponder
from application.ports.services import AIRequest
from entrypoints.container import build_container
from entrypoints.settings import Settings
from tests.support.secrets import TEST_TOKEN_KEY

PRODUCTION = {
    "DATABASE_URL": "postgresql://db/app",
    "REDIS_URL": "redis://cache:6379/0",
    "WEBHOOK_SECRET": "s",
    "WEBHOOK_VERIFY_TOKEN": "v",
    "ADMIN_API_KEY": "a",
    "TOKEN_ENCRYPTION_KEYS": TEST_TOKEN_KEY,
}


def test_production_with_an_openai_key_answers_with_openai() -> None:
    container = build_container(Settings.from_env({**PRODUCTION, "OPENAI_API_KEY": "sk-test"}))

    assert isinstance(container.ai(), OpenAIResponder)
    assert container.ai().label == "openai"


def test_production_that_opted_in_answers_with_the_offline_responder_and_every_reply_says_so() -> None:
    container = build_container(Settings.from_env({**PRODUCTION, "OFFLINE_RESPONDER": "true"}))

    ai = container.ai()
    assert isinstance(ai, OfflineResponder)
    assert ai.label == "offline"
    reply = ai.respond(AIRequest("pmpt_1", None, ai.start_conversation(metadata={}), ("Hi",)))
    assert reply.text.startswith(OFFLINE_LABEL)


def test_dev_mode_without_a_key_answers_with_the_offline_responder() -> None:
    assert isinstance(build_container(Settings.from_env({}, dev=True)).ai(), OfflineResponder)


def test_dev_mode_with_a_key_answers_with_openai() -> None:
    assert isinstance(build_container(Settings.from_env({"OPENAI_API_KEY": "sk-dev"}, dev=True)).ai(), OpenAIResponder)


def test_upstream_patience_is_wired_into_the_turn_policy_and_zero_means_no_limit() -> None:
    hour = build_container(Settings.from_env({}, dev=True)).turn_policy()
    forever = build_container(Settings.from_env({"UPSTREAM_PATIENCE_MS": "0"}, dev=True)).turn_policy()

    assert hour.patience == timedelta(hours=1)
    assert forever.patience is None
