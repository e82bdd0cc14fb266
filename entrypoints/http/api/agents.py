"""A tenant's agents: an OpenAI dashboard prompt on one channel each."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.payloads import CreateAgentRequest, agent_json, read_body
from entrypoints.http.services import container

agents = Blueprint("agents", __name__)


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
