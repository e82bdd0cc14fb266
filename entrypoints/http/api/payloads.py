"""The REST API's edge: request bodies and query strings in, entities out as JSON.

Bodies are structured by a module-local cattrs converter into small attrs request classes. Unknown
keys are ignored (clients may send more than we read); a wrong type or a missing field is one 422
whose message comes from `cattrs.transform_error` and whose `field` names the first bad field.
Syntax is checked here; meaning (a valid e-mail, a positive amount) in the use cases and domain.
Syntax includes what can be stored: a string holding NUL or a lone surrogate is a 422 (the caller is
there to fix it; silently changing a token or an id would be worse), and so is one longer than its
bound (`domain.limits`), each naming the field; so are query parameters and Idempotency-Key.

Responses are built here too, and only here, so that secrets cannot leak by accident: a user's
`api_key_hash` is never serialised and a channel's `access_token` only masked.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs
from attrs import field, frozen
from cattrs.gen import make_dict_unstructure_fn, override
from flask import request

from application.ports.repositories import MessageQuery, Page
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.configure_webhook import ConfiguredWebhook
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreatedUser, CreateUserCommand
from application.use_cases.tenant_queries import CreditsView
from application.use_cases.top_up_credits import TopUpCommand, TopUpResult
from domain import limits
from domain.channels import BotState, ChannelType
from domain.credits import Credits, LedgerEntry
from domain.messages import Direction, Message, MessageStatus
from domain.tenancy import Agent, Channel, User
from domain.webhooks import WebhookEndpoint
from entrypoints.http.errors import ApiError
from entrypoints.http.json_input import NotJson, parse_json

_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.Enum)

JsonObject = dict[str, Any]

#: Bounds of `limit` on listings: large enough for a page of a chat, small enough to stay fast.
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50

#: Where a request class keeps a field's bound (`domain.limits`), in characters.
_MAX_LENGTH = "max_length"
#: The same key, for what describes the request classes (the OpenAPI document).
MAX_LENGTH = _MAX_LENGTH


def _bounded(limit: int) -> dict[str, int]:
    return {_MAX_LENGTH: limit}


# --- requests ----------------------------------------------------------------------------------


@frozen
class CreateUserRequest:
    email: str  # bounded by the domain's e-mail check
    company_name: str | None = field(default=None, metadata=_bounded(limits.COMPANY_NAME))

    def command(self) -> CreateUserCommand:
        return CreateUserCommand(email=self.email, company_name=self.company_name)


@frozen
class AddChannelRequest:
    type: ChannelType
    external_number: str = field(metadata=_bounded(limits.EXTERNAL_NUMBER))
    phone_number_id: str | None = field(default=None, metadata=_bounded(limits.CHANNEL_ID))
    access_token: str | None = field(default=None, repr=False, metadata=_bounded(limits.ACCESS_TOKEN))
    display_name: str | None = field(default=None, metadata=_bounded(limits.DISPLAY_NAME))
    #: Web chat: the sites that may embed the widget (empty or absent: any site).
    allowed_origins: tuple[str, ...] | None = None

    def command(self, user_id: str) -> AddChannelCommand:
        return AddChannelCommand(
            user_id=user_id,
            type=self.type,
            external_number=self.external_number,
            access_token=self.access_token,
            phone_number_id=self.phone_number_id,
            display_name=self.display_name,
            allowed_origins=self.allowed_origins,
        )


@frozen
class CreateAgentRequest:
    name: str = field(metadata=_bounded(limits.AGENT_NAME))
    prompt_id: str = field(metadata=_bounded(limits.PROMPT_ID))
    phone_number_id: str | None = field(default=None, metadata=_bounded(limits.CHANNEL_ID))
    prompt_version: str | None = field(default=None, metadata=_bounded(limits.PROMPT_VERSION))
    extraction_prompt_id: str | None = field(default=None, metadata=_bounded(limits.PROMPT_ID))

    def command(self, user_id: str) -> CreateAgentCommand:
        return CreateAgentCommand(
            user_id=user_id,
            name=self.name,
            prompt_id=self.prompt_id,
            phone_number_id=self.phone_number_id,
            prompt_version=self.prompt_version,
            extraction_prompt_id=self.extraction_prompt_id,
        )


@frozen
class TopUpRequest:
    amount: int
    reason: str | None = field(default=None, metadata=_bounded(limits.TOP_UP_REASON))

    def command(self, user_id: str, idempotency_key: str | None) -> TopUpCommand:
        return TopUpCommand(user_id=user_id, amount=self.amount, reason=self.reason, idempotency_key=idempotency_key)


class _BadValue(ValueError):
    """Raised by our hooks; its text is the whole explanation, shown as is."""


def _strict_str(value: object, _: type) -> str:
    # cattrs' default would turn 42 or {"a": 1} into a string; a wrong type is the client's mistake.
    if not isinstance(value, str):
        raise _BadValue(f"expected a string, got {_json_type(value)}")
    if not limits.is_storable(value):
        raise _BadValue(_UNSTORABLE)
    return value


_UNSTORABLE = "must not contain NUL characters (\\u0000) or lone surrogates (\\ud800-\\udfff)"


def _strict_int(value: object, _: type) -> int:
    # The default would accept "12", 1.9 (as 1) and true (as 1): money must not be guessed at.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadValue(f"expected a whole number, got {_json_type(value)}")
    return value


def _strict_bool(value: object, _: type) -> bool:
    # The default would take "false" (a non-empty string) as true.
    if not isinstance(value, bool):
        raise _BadValue(f"expected true or false, got {_json_type(value)}")
    return value


def _channel_type(value: object, _: type) -> ChannelType:
    allowed = ", ".join(kind.value for kind in ChannelType)
    if not isinstance(value, str) or value not in {kind.value for kind in ChannelType}:
        raise _BadValue(f"expected one of {allowed}, got {_shown(value)}")
    return ChannelType(value)


def _bot_state(value: object, _: type) -> BotState:
    allowed = ", ".join(state.value for state in BotState)
    if not isinstance(value, str) or value not in {state.value for state in BotState}:
        raise _BadValue(f"expected one of {allowed}, got {_shown(value)}")
    return BotState(value)


_JSON_TYPES = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _shown(value: object) -> str:
    """A wrong value as the caller wrote it when it is a short string; its JSON type otherwise (an
    array may nest too deeply for json.dumps to write it back)."""
    return json.dumps(value) if isinstance(value, str) and len(value) <= 40 else _json_type(value)


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _describe(error: BaseException, type_: type | None) -> str:
    if isinstance(error, _BadValue):
        return str(error)
    return cattrs.v.format_exception(error, type_)


_requests = cattrs.Converter()
_requests.register_structure_hook(str, _strict_str)
_requests.register_structure_hook(int, _strict_int)
_requests.register_structure_hook(ChannelType, _channel_type)
_requests.register_structure_hook(BotState, _bot_state)
_requests.register_structure_hook(bool, _strict_bool)


def _json_body() -> object:
    """The request's JSON body, whatever its Content-Type (curl users often omit it)."""
    raw = request.get_data()
    try:
        return parse_json(raw)
    except NotJson as error:
        reason = "the body is empty" if not raw.strip() else str(error)
        raise ApiError(400, "malformed_json", f"the request body must be a JSON object: {reason}") from error


def read_body(cls: type[_T]) -> _T:
    """The request body as `cls`: 400 when it is not JSON, 422 naming the field when it does not fit."""
    body = _json_body()
    if not isinstance(body, Mapping):
        raise ApiError(422, "validation_failed", f"the request body must be a JSON object, got {_json_type(body)}")
    try:
        structured = _requests.structure(body, cls)
    except cattrs.ClassValidationError as error:
        with_field, _ = error.group_exceptions()
        name = with_field[0][1].name if with_field else None
        message = "; ".join(cattrs.transform_error(error, "body", _describe))
        raise ApiError(422, "validation_failed", message, field=name) from error
    _require_bounds(structured)
    return structured


def body_keys() -> frozenset[str]:
    """The keys the request's JSON body holds (call after `read_body`): what a PATCH changes."""
    body = _json_body()
    return frozenset(body) if isinstance(body, Mapping) else frozenset()


def _require_bounds(structured: Any) -> None:
    for attribute in attrs.fields(type(structured)):
        limit = attribute.metadata.get(_MAX_LENGTH)
        value = getattr(structured, attribute.name)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            message = f"{attribute.name} must be at most {limit} characters, got {len(value)}"
            raise ApiError(422, "validation_failed", message, field=attribute.name)


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > limits.IDEMPOTENCY_KEY or not limits.is_storable(value):
        raise ApiError(
            422,
            "validation_failed",
            f"Idempotency-Key must be 1 to {limits.IDEMPOTENCY_KEY} characters, without NUL",
            field="Idempotency-Key",
        )
    return value


# --- the message listing's query string --------------------------------------------------------


def message_query(args: Mapping[str, str]) -> MessageQuery:
    """GET /users/{id}/messages parameters. Unknown parameters are ignored, like unknown body keys."""
    order = args.get("order", "newest")
    if order not in ("newest", "sequence"):
        raise _bad_param("order", "order must be newest or sequence")
    conversation_id = _int_param(args, "conversation_id", minimum=1)
    if order == "sequence" and conversation_id is None:
        # Sequence numbers only mean something within one conversation.
        raise _bad_param("conversation_id", "conversation_id is required when order=sequence")
    since = _time_param(args, "since")
    until = _time_param(args, "until")
    if since is not None and until is not None and until <= since:
        raise _bad_param("until", "until must be later than since")
    limit = _int_param(args, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
    return MessageQuery(
        phone_number_id=_text_param(args, "phone_number_id", limits.CHANNEL_ID),
        conversation_id=conversation_id,
        customer_id=_text_param(args, "customer", limits.CUSTOMER_ID),
        status=_status_param(args),
        direction=_direction_param(args),
        since=since,
        until=until,
        order=order,
        cursor=_int_param(args, "cursor", minimum=0),
        limit=DEFAULT_PAGE_SIZE if limit is None else limit,
    )


def _bad_param(name: str, message: str) -> ApiError:
    return ApiError(422, "validation_failed", message, field=name)


def _text_param(args: Mapping[str, str], name: str, limit: int) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise _bad_param(name, f"{name} must not be empty")
    if len(value) > limit:
        raise _bad_param(name, f"{name} must be at most {limit} characters, got {len(value)}")
    if not limits.is_storable(value):
        raise _bad_param(name, f"{name} {_UNSTORABLE}")
    return value


def _int_param(args: Mapping[str, str], name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
    # isdigit() alone would let "²" through, and int() would accept "+5" and " 5".
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise _bad_param(name, f"{name} must be a whole number {bounds}, got {value!r}")
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise _bad_param(name, f"{name} must be a whole number {bounds}, got {value!r}")
    return number


def _time_param(args: Mapping[str, str], name: str) -> datetime | None:
    value = args.get(name)
    if value is None:
        return None
    problem = f"{name} must be an ISO-8601 date-time with a timezone (e.g. 2025-01-31T09:00:00Z), got {value!r}"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise _bad_param(name, problem) from error
    if moment.tzinfo is None:
        raise _bad_param(name, problem)
    return moment


def _direction_param(args: Mapping[str, str]) -> Direction | None:
    value = args.get("direction")
    if value is None:
        return None
    if value not in {direction.value for direction in Direction}:
        raise _bad_param("direction", f"direction must be inbound or outbound, got {value!r}")
    return Direction(value)


def time_range(args: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """`since` and `until`, each optional; `until` later than `since` when both are given."""
    since = _time_param(args, "since")
    until = _time_param(args, "until")
    if since is not None and until is not None and until <= since:
        raise _bad_param("until", "until must be later than since")
    return since, until


def bool_param(args: Mapping[str, str], name: str) -> bool | None:
    """`true` or `false`, as written; anything else (`1`, `yes`, `True`) is the caller's mistake."""
    value = args.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise _bad_param(name, f"{name} must be true or false, got {_shown(value)}")
    return value == "true"


def choice_param(args: Mapping[str, str], name: str, choices: type[_E]) -> _E | None:
    """One of an enumeration's values."""
    value = args.get(name)
    if value is None:
        return None
    allowed = [member.value for member in choices]
    if value not in allowed:
        raise _bad_param(name, f"{name} must be one of {', '.join(allowed)}, got {_shown(value)}")
    return choices(value)


def page_size(args: Mapping[str, str]) -> int:
    limit = _int_param(args, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE if limit is None else limit


#: The query-string helpers, for the listings of other resources' blueprints.
bad_param = _bad_param
text_param = _text_param
int_param = _int_param


def _status_param(args: Mapping[str, str]) -> MessageStatus | None:
    value = args.get("status")
    if value is None:
        return None
    if value not in {status.value for status in MessageStatus}:
        allowed = ", ".join(status.value for status in MessageStatus)
        raise _bad_param("status", f"status must be one of {allowed}, got {value!r}")
    return MessageStatus(value)


# --- responses ---------------------------------------------------------------------------------

_responses = cattrs.Converter()
_responses.register_unstructure_hook(datetime, datetime.isoformat)
# Registered once for each class, so that no other path through this converter can leak them.
_responses.register_unstructure_hook(User, make_dict_unstructure_fn(User, _responses, api_key_hash=override(omit=True)))
_responses.register_unstructure_hook(
    Channel, make_dict_unstructure_fn(Channel, _responses, access_token=override(omit=True))
)
_responses.register_unstructure_hook(
    WebhookEndpoint, make_dict_unstructure_fn(WebhookEndpoint, _responses, secret=override(omit=True))
)


def user_json(user: User) -> JsonObject:
    body: JsonObject = _responses.unstructure(user)
    return body


def created_user_json(created: CreatedUser) -> JsonObject:
    return {"user": user_json(created.user), "api_key": created.api_key}


def channel_json(channel: Channel) -> JsonObject:
    body: JsonObject = _responses.unstructure(channel)
    body.pop("deleted_at", None)  # a deleted channel is never shown
    # Web chat channels have no token: null says so, where a mask would suggest one is stored.
    body["access_token"] = channel.masked_token if channel.access_token else None
    return body


def agent_json(agent: Agent) -> JsonObject:
    body: JsonObject = _responses.unstructure(agent)
    body.pop("deleted_at", None)  # a deleted agent is never shown
    return body


def ledger_entry_json(entry: LedgerEntry) -> JsonObject:
    body: JsonObject = _responses.unstructure(entry)
    return body


def balance_json(credits: Credits) -> JsonObject:
    return {"balance": credits.balance, "reserved": credits.reserved, "available": credits.available}


def credits_json(view: CreditsView) -> JsonObject:
    return {
        "user_id": view.credits.user_id,
        **balance_json(view.credits),
        "ledger": [ledger_entry_json(entry) for entry in view.ledger],
        # The older entries: GET /users/{id}/credits/ledger?cursor=<this>.
        "ledger_next_cursor": view.ledger_next_cursor,
    }


def top_up_json(result: TopUpResult) -> JsonObject:
    return {"entry": ledger_entry_json(result.entry), **balance_json(result.credits)}


def message_json(message: Message) -> JsonObject:
    body: JsonObject = _responses.unstructure(message)
    return body


def messages_page_json(page: Page[Message]) -> JsonObject:
    return {"messages": [message_json(message) for message in page.items], "next_cursor": page.next_cursor}


def ledger_page_json(page: Page[LedgerEntry]) -> JsonObject:
    return {"entries": [ledger_entry_json(entry) for entry in page.items], "next_cursor": page.next_cursor}


def retried_message_json(message: Message, *, retried: bool) -> JsonObject:
    return {**message_json(message), "retried": retried}


def webhook_json(endpoint: WebhookEndpoint) -> JsonObject:
    """The webhook as it is shown whenever asked: never its secret."""
    body: JsonObject = _responses.unstructure(endpoint)
    return body


def configured_webhook_json(configured: ConfiguredWebhook) -> JsonObject:
    """The webhook, with its secret only when this call made one (creation, rotation): shown that once."""
    body = webhook_json(configured.endpoint)
    if configured.new_secret is not None:
        body["secret"] = configured.new_secret
    return body
