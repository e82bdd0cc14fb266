"""`/users`: the operator creates tenants; a tenant reads its own record."""

from __future__ import annotations

from domain.tenancy import User
from entrypoints.http.api.payloads import CreateUserRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, ref, request_schema

SCHEMAS: dict[str, JsonSchema] = {
    "User": entity_schema(User, omit=("api_key_hash",), description="A tenant: a business using the service."),
    "CreateUserRequest": request_schema(CreateUserRequest),
    "CreatedUser": closed(
        {"user": ref("User"), "api_key": {"type": "string", "description": "Shown once: only its hash is kept."}}
    ),
}

PATHS: dict[str, JsonSchema] = {
    "/users": {
        "post": operation(
            "create_user",
            "Create a tenant (admin key only)",
            tag="users",
            body=ref("CreateUserRequest"),
            responses={"201": answer("The tenant, and its API key (shown this once).", ref("CreatedUser"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS, 409),
            description="A tenant's key is told this does not exist (404). The e-mail is unique (409).",
        )
    },
    "/users/{user_id}": {
        "get": operation(
            "get_user",
            "A tenant's record",
            tag="users",
            parameters=[USER_ID],
            responses={"200": answer("The tenant.", ref("User"))},
            error_statuses=COMMON_ERRORS,
        )
    },
}
