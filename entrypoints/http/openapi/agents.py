"""`/users/{user_id}/agents`: a tenant's agents, an OpenAI dashboard prompt on one channel each."""

from __future__ import annotations

from domain.tenancy import Agent
from entrypoints.http.api.agents import UpdateAgentRequest
from entrypoints.http.api.payloads import CreateAgentRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation, path_id
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, ref, request_schema

AGENT_ID = path_id("agent_id", "The agent's id (`agt_…`).")


def _update_agent_request() -> JsonSchema:
    body = request_schema(
        UpdateAgentRequest,
        description=(
            "Every key is optional: an absent key leaves the field as it is. `phone_number_id: null` unlinks "
            "the agent, another channel of the tenant moves it there (relink: the channel's active "
            "conversations are archived, and an agent on that channel is unlinked); `prompt_version: null` "
            "follows the prompt's latest version; `extraction_prompt_id: null` reads leads with the built-in "
            "instructions. `name` and `prompt_id` cannot be null."
        ),
    )
    for never_null in ("name", "prompt_id"):
        body["properties"][never_null]["type"] = "string"
    return body


SCHEMAS: dict[str, JsonSchema] = {
    "Agent": entity_schema(
        Agent,
        omit=("deleted_at",),
        description=(
            "An OpenAI dashboard prompt, answering the channel `phone_number_id` (null: linked to none). "
            "`extraction_prompt_id` is the dashboard prompt that reads its conversations for lead data "
            "(null: the built-in instructions)."
        ),
    ),
    "CreateAgentRequest": request_schema(
        CreateAgentRequest,
        description=(
            "`prompt_id` and `extraction_prompt_id` (optional) are OpenAI prompt ids (`pmpt_…`); the channel is "
            "the tenant's."
        ),
    ),
    "UpdateAgentRequest": _update_agent_request(),
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
    "/users/{user_id}/agents/{agent_id}": {
        "get": operation(
            "get_agent",
            "One agent",
            tag="agents",
            parameters=[USER_ID, AGENT_ID],
            responses={"200": answer("The agent.", ref("Agent"))},
            error_statuses=COMMON_ERRORS,
            description="A deleted agent is not found (404).",
        ),
        "patch": operation(
            "update_agent",
            "Rename an agent, change its prompt, or move it to another channel (or none)",
            tag="agents",
            parameters=[USER_ID, AGENT_ID],
            body=ref("UpdateAgentRequest"),
            responses={"200": answer("The agent as it is now.", ref("Agent"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS, 409),
            description=(
                "A `phone_number_id` naming no channel of the tenant is 404 with `field: phone_number_id`; "
                "409 when another relink of the same channel committed at the same moment (try again)."
            ),
        ),
        "delete": operation(
            "delete_agent",
            "Delete an agent",
            tag="agents",
            parameters=[USER_ID, AGENT_ID],
            responses={"204": answer("Deleted: its channel has no agent now; its conversations are archived.")},
            error_statuses=(*COMMON_ERRORS, 409),
            description="409 when a relink of the same channel committed at the same moment (try again).",
        ),
    },
}
