"""`/users/{user_id}/phone_numbers`: a tenant's channels (WhatsApp numbers, Instagram accounts, web chat)."""

from __future__ import annotations

from domain.tenancy import Channel
from entrypoints.http.api.channels import UpdateChannelRequest
from entrypoints.http.api.payloads import AddChannelRequest
from entrypoints.http.openapi.components import BODY_ERRORS, COMMON_ERRORS, USER_ID, answer, operation, path_id
from entrypoints.http.openapi.schemas import JsonSchema, closed, entity_schema, nullable, ref, request_schema

PHONE_NUMBER_ID = path_id("phone_number_id", "The channel's id (Meta's id of the number or account, or `wc_…`).")

SCHEMAS: dict[str, JsonSchema] = {
    "Channel": entity_schema(
        Channel,
        omit=("deleted_at",),
        replace={
            "access_token": nullable(
                {
                    "type": "string",
                    "description": (
                        "Masked to its last four characters (`…6789`; `****` for a token of 8 or fewer); "
                        "null for a channel without a token."
                    ),
                }
            ),
            "allowed_origins": {
                "type": "array",
                "items": {"type": "string"},
                "description": (
                    "Web chat: the sites whose pages may use the widget (`https://shop.example`, "
                    "`https://*.shop.example`); empty: any site. Always empty for other channel types."
                ),
            },
        },
        description="A customer channel. `phone_number_id` is what Meta's deliveries are routed on.",
    ),
    "AddChannelRequest": request_schema(
        AddChannelRequest,
        description=(
            "WhatsApp and Instagram channels need `phone_number_id` (Meta's id) and `access_token`; "
            "a web chat channel gets a generated id and needs no token."
        ),
    ),
    "UpdateChannelRequest": request_schema(
        UpdateChannelRequest,
        description=(
            "Every key is optional: what is absent (or null) stays as it is. `bot: paused` stops the AI on "
            "every conversation of the channel (a person answers); `active` hands them back."
        ),
    ),
    "ChannelList": closed({"phone_numbers": {"type": "array", "items": ref("Channel")}}),
}

PATHS: dict[str, JsonSchema] = {
    "/users/{user_id}/phone_numbers": {
        "get": operation(
            "list_phone_numbers",
            "A tenant's channels",
            tag="phone_numbers",
            parameters=[USER_ID],
            responses={"200": answer("Every channel of the tenant.", ref("ChannelList"))},
            error_statuses=COMMON_ERRORS,
        ),
        "post": operation(
            "add_phone_number",
            "Add a channel",
            tag="phone_numbers",
            parameters=[USER_ID],
            body=ref("AddChannelRequest"),
            responses={"201": answer("The channel, its token masked.", ref("Channel"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS, 409),
            description="A `phone_number_id` registered by anyone already is a conflict (409).",
        ),
    },
    "/users/{user_id}/phone_numbers/{phone_number_id}": {
        "patch": operation(
            "update_phone_number",
            "Rename a channel, replace its token, or pause/resume its AI",
            tag="phone_numbers",
            parameters=[USER_ID, PHONE_NUMBER_ID],
            body=ref("UpdateChannelRequest"),
            responses={"200": answer("The channel as it is now, its token masked.", ref("Channel"))},
            error_statuses=(*COMMON_ERRORS, *BODY_ERRORS),
        ),
        "delete": operation(
            "delete_phone_number",
            "Delete a channel",
            tag="phone_numbers",
            parameters=[USER_ID, PHONE_NUMBER_ID],
            responses={
                "204": answer(
                    "Deleted: its agent is unlinked, its conversations archived; Meta's deliveries are ignored."
                )
            },
            error_statuses=(*COMMON_ERRORS, 409),
            description="409 when a relink of its agent committed at the same moment (try again).",
        ),
    },
}
