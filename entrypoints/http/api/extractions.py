"""A tenant's leads: the latest extraction of each conversation, filtered, and one conversation's history."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from application.ports.lead_storage import ExtractionQuery
from application.use_cases.lead_queries import Lead, LeadPage
from domain import limits
from domain.channels import ChannelType
from domain.extraction import FIELDS, SCORE_FIELDS
from entrypoints.http.api.auth import caller_for
from entrypoints.http.api.conversations import path_id
from entrypoints.http.api.payloads import (
    JsonObject,
    bool_param,
    choice_param,
    int_param,
    page_size,
    text_param,
    time_range,
)
from entrypoints.http.services import container

extractions = Blueprint("extractions", __name__)

#: The score filters: `min_urgency` … `min_engagement`, each 1 to 3.
SCORE_FILTERS = tuple(f"min_{score}" for score in SCORE_FIELDS)


@extractions.get("/users/<id:user_id>/extractions")
def list_extractions(user_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    query = extraction_query(request.args)
    return jsonify(lead_page_json(container().lead_queries().latest(user_id, query)))


@extractions.get("/users/<id:user_id>/conversations/<id:conversation_id>/extractions")
def conversation_extractions(user_id: str, conversation_id: str) -> ResponseReturnValue:
    caller_for(user_id)
    number = path_id(conversation_id, "conversation")
    cursor = int_param(request.args, "cursor", minimum=1)
    page = container().lead_queries().history(user_id, number, cursor, page_size(request.args))
    return jsonify(lead_page_json(page))


def extraction_query(args: Mapping[str, str]) -> ExtractionQuery:
    """GET /users/{id}/extractions parameters. Unknown parameters are ignored."""
    minimums = {name: int_param(args, name, minimum=1, maximum=3) for name in SCORE_FILTERS}
    since, until = time_range(args)
    return ExtractionQuery(
        channel=choice_param(args, "channel", ChannelType),
        phone_number_id=text_param(args, "phone_number_id", limits.CHANNEL_ID),
        min_urgency=minimums["min_urgency"],
        min_budget=minimums["min_budget"],
        min_fit=minimums["min_fit"],
        min_engagement=minimums["min_engagement"],
        has_demo=bool_param(args, "has_demo"),
        since=since,
        until=until,
        cursor=int_param(args, "cursor", minimum=1),
        limit=page_size(args),
    )


def lead_json(lead: Lead) -> JsonObject:
    """An extraction as the business reads it: every field, null when the conversation did not settle it
    (`missing` says why); a demo time in the customer's own UTC offset."""
    extraction = lead.extraction
    fields = extraction.fields
    body: JsonObject = {
        "extraction_id": extraction.extraction_id,
        "conversation_id": extraction.conversation_id,
        "phone_number_id": extraction.phone_number_id,
        "channel": None if lead.channel is None else lead.channel.value,
        "through_sequence_no": extraction.through_sequence_no,
    }
    body.update(fields.as_dict())
    if fields.demo_datetime is not None:
        body["demo_datetime"] = fields.demo_datetime.isoformat()
    body["missing"] = {name: fields.missing[name] for name in FIELDS if name in fields.missing}
    body["credits_charged"] = extraction.credits_charged
    body["created_at"] = extraction.created_at.isoformat()
    return body


def lead_page_json(page: LeadPage) -> JsonObject:
    return {"extractions": [lead_json(lead) for lead in page.items], "next_cursor": page.next_cursor}
