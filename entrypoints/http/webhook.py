"""Meta's webhook: the subscription handshake (GET) and signed deliveries (POST).

A delivery is verified over its raw bytes before anything is parsed or stored, every entry,
change, message and status in it is handled, and it is answered 200 even when it carries only
things we ignore or reject, because any other answer makes Meta redeliver to every subscribed app.
Each message is stored on its own: one that cannot be (unreadable, over a bound, refused by the
database) is kept aside with the delivery, and the others are stored and answered. Only a failure to
make anything durable (the database away) answers 5xx, so that Meta delivers it again.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from application.use_cases.handle_inbound_message import HandleInbound, InboundOutcome
from application.use_cases.record_business_echo import EchoOutcome, RecordEcho
from application.use_cases.reject_delivery import Rejection
from entrypoints.http.errors import ApiError
from entrypoints.http.meta.envelope import MalformedDelivery, read_delivery
from entrypoints.http.services import container
from entrypoints.http.signature import verify_signature

log = logging.getLogger(__name__)


def webhook_blueprint(path: str) -> Blueprint:
    blueprint = Blueprint("webhook", __name__)
    blueprint.add_url_rule(path, "verify", verify_subscription, methods=["GET"])
    blueprint.add_url_rule(path, "deliver", receive_delivery, methods=["POST"])
    return blueprint


def verify_subscription() -> ResponseReturnValue:
    settings = container().settings()
    mode = request.args.get("hub.mode")
    token = request.args.get("hub.verify_token")
    challenge = request.args.get("hub.challenge")
    if mode != "subscribe" or challenge is None or token != settings.webhook_verify_token:
        raise ApiError(403, "verification_failed", "hub.mode must be 'subscribe' and hub.verify_token must match")
    return Response(challenge, status=200, mimetype="text/plain")


def receive_delivery() -> ResponseReturnValue:
    services = container()
    raw = request.get_data(cache=False)
    if not verify_signature(raw, request.headers.get("X-Hub-Signature-256"), services.settings().webhook_secret):
        raise ApiError(401, "invalid_signature", "X-Hub-Signature-256 is missing or does not match the body")
    reject = services.reject_delivery()
    try:
        delivery = read_delivery(raw)
    except MalformedDelivery as error:
        # Signed, so Meta's (or a holder of the secret's): worth a look. 400 all the same, unless not
        # even this can be stored (StorageUnavailable: 503, and the redelivery is kept then).
        reject(Rejection(f"{error.code}: {error}", raw, correlation_id=g.correlation_id))
        raise ApiError(400, error.code, str(error), field=error.field_path) from None

    for rejected in delivery.rejected:
        reject(
            Rejection(rejected.reason, raw, rejected.phone_number_id, rejected.platform_message_id, g.correlation_id)
        )
    # An unsent message already stored is skipped before anything of this delivery is queued for an answer.
    apply_deletion = services.apply_customer_deletion()
    for deletion in delivery.deletions:
        apply_deletion(deletion)
    handle = services.handle_inbound_message()
    outcomes = [
        handle(HandleInbound(message, correlation_id=g.correlation_id, delivery=raw)) for message in delivery.inbound
    ]
    record_echo = services.record_business_echo()
    echoed = [record_echo(RecordEcho(echo, correlation_id=g.correlation_id, delivery=raw)) for echo in delivery.echoes]
    apply_report = services.apply_delivery_report()
    applied = sum(apply_report(report) for report in delivery.reports)
    for ignored in delivery.ignored:
        log.info(
            "webhook_item_ignored",
            extra={"kind": str(ignored.kind), "reason": ignored.reason, "detail": ignored.detail},
        )
    return jsonify(
        received=len(delivery.inbound),
        outcomes=[str(outcome) for outcome in outcomes],
        statuses_applied=applied,
        ignored=len(delivery.ignored),
        rejected=len(delivery.rejected) + outcomes.count(InboundOutcome.REJECTED) + echoed.count(EchoOutcome.REJECTED),
        echoes=len(delivery.echoes),
    )
