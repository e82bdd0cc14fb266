"""A tenant's agents: an OpenAI dashboard prompt on one channel each (or on none)."""

from __future__ import annotations

from attrs import field, frozen
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from application.use_cases.delete_agent import DeleteAgentCommand
from application.use_cases.relink_agent import UNCHANGED, RelinkAgentCommand
from domain import limits
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import CreateAgentRequest, _bounded, agent_json, body_keys, read_body
from entrypoints.http.errors import ApiError
from entrypoints.http.services import container

agents = Blueprint("agents", __name__)


@frozen
class UpdateAgentRequest:
    """PATCH body: a key absent leaves the field as it is; `phone_number_id: null` unlinks the agent,
    `prompt_version: null` means the prompt's latest version, `extraction_prompt_id: null` the built-in
    extraction instructions. `name` and `prompt_id` cannot be null."""

    name: str | None = field(default=None, metadata=_bounded(limits.AGENT_NAME))
    prompt_id: str | None = field(default=None, metadata=_bounded(limits.PROMPT_ID))
    prompt_version: str | None = field(default=None, metadata=_bounded(limits.PROMPT_VERSION))
    phone_number_id: str | None = field(default=None, metadata=_bounded(limits.CHANNEL_ID))
    extraction_prompt_id: str | None = field(default=None, metadata=_bounded(limits.PROMPT_ID))

    def command(self, user_id: str, agent_id: str, given: frozenset[str]) -> RelinkAgentCommand:
        for required in ("name", "prompt_id"):
            if required in given and getattr(self, required) is None:
                raise ApiError(422, "validation_failed", f"{required} must not be null", field=required)
        return RelinkAgentCommand(
            user_id=user_id,
            agent_id=agent_id,
            name=self.name if self.name is not None else UNCHANGED,
            prompt_id=self.prompt_id if self.prompt_id is not None else UNCHANGED,
            prompt_version=self.prompt_version if "prompt_version" in given else UNCHANGED,
            phone_number_id=self.phone_number_id if "phone_number_id" in given else UNCHANGED,
            extraction_prompt_id=self.extraction_prompt_id if "extraction_prompt_id" in given else UNCHANGED,
        )


@agents.get("/users/<id:user_id>/agents")
def list_agents(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    found = container().tenant_queries().agents(user_id)
    return jsonify(agents=[agent_json(agent) for agent in found])


@agents.post("/users/<id:user_id>/agents")
def create_agent(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    command = read_body(CreateAgentRequest).command(user_id)
    return jsonify(agent_json(container().create_agent()(command))), 201


@agents.get("/users/<id:user_id>/agents/<id:agent_id>")
def get_agent(user_id: str, agent_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    return jsonify(agent_json(container().tenant_queries().agent(user_id, agent_id)))


@agents.patch("/users/<id:user_id>/agents/<id:agent_id>")
def update_agent(user_id: str, agent_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    command = read_body(UpdateAgentRequest).command(user_id, agent_id, body_keys())
    return jsonify(agent_json(container().relink_agent()(command)))


@agents.delete("/users/<id:user_id>/agents/<id:agent_id>")
def delete_agent(user_id: str, agent_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    container().delete_agent()(DeleteAgentCommand(user_id=user_id, agent_id=agent_id))
    return "", 204
