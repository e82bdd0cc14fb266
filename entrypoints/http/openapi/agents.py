"""`/users/{user_id}/agents`: a tenant's agents, an OpenAI dashboard prompt on one channel each."""

from __future__ import annotations

from domain.tenancy import Agent
from entrypoints.http.api.payloads import CreateAgentRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, ref, request_schema

SCHEMAS: dict[str, JsonSchema] = {
    "Agent": entity_schema(
        Agent,
        omit=("deleted_at",),
        description="An OpenAI dashboard prompt, answering the channel `phone_number_id` (null: linked to none).",
    ),
    "CreateAgentRequest": request_schema(
        CreateAgentRequest, description="`prompt_id` is an OpenAI prompt id (`pmpt_…`); the channel is the tenant's."
    ),
    "AgentList": closed({"agents": {"type": "array", "items": ref("Agent")}}),
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/agents": {
        "get": operation(
            "list_agents",
            "A tenant's agents",
            tag="agents",
            parameters=[USER_ID],
            responses={"200": answer("Every agent of the tenant.", ref("AgentList"))},
            error_statuses=COMMON_ERRORS,
        ),
        "post": operation(
            "create_agent",
            "Create an agent on a channel",
            tag="agents",
            parameters=[USER_ID],
            body=ref("CreateAgentRequest"),
            responses={"201": answer("The agent.", ref("Agent"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS, 409),
            description="A channel takes one agent (409); another tenant's channel is not found (404).",
        ),
    },
}
