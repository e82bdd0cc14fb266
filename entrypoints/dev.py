"""`mcagent dev`: the whole service in one process, with nothing to install or sign up for.

Embedded (no DATABASE_URL/REDIS_URL): in-memory storage, queue and locks, an in-process worker
thread, replies recorded instead of sent to Meta, and — without OPENAI_API_KEY — the offline
responder. A demo tenant is created at start with one channel of each type, and the page at /dev lets a person
chat on each: on WhatsApp and Instagram each message is posted to the real webhook as a signed delivery of
that platform (the replies are recorded, there is no Meta account), on web chat through the real widget.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from attrs import frozen
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from adapters.memory.services import InMemoryBackgroundJobs, InMemoryJobQueue
from application.ports.repositories import MessageQuery
from application.use_cases.add_channel import AddChannelCommand
from application.use_cases.create_agent import CreateAgentCommand
from application.use_cases.create_user import CreateUserCommand
from application.use_cases.deliver_webhook import DeliverWebhookCommand
from application.use_cases.extract_lead import ExtractLeadCommand
from application.use_cases.process_pending_messages import ProcessScope
from application.use_cases.top_up_credits import TopUpCommand
from domain.channels import ChannelType
from entrypoints.container import Container
from entrypoints.http.services import container as current_container
from entrypoints.http.signature import sign
from entrypoints.worker.main import sweep_once, sweeps_of

log = logging.getLogger(__name__)

DEMO_PHONE_NUMBER_ID = "100000000000001"
DEMO_INSTAGRAM_ACCOUNT_ID = "17841400000000001"
DEMO_PROMPT_ID = "pmpt_demo"


@frozen
class DemoTenant:
    user_id: str
    api_key: str
    phone_number_id: str
    agent_id: str
    instagram_account_id: str
    widget_id: str


def seed_demo_tenant(container: Container, run: str = "") -> DemoTenant:
    """A user with a WhatsApp number, an Instagram account and a web chat widget, an agent on each, and
    1,000 credits.

    `run` makes the e-mail and channel id unique, for a database that outlives the process."""
    created = container.create_user()(CreateUserCommand(email=f"demo{run}@example.com", company_name="Demo Company"))
    user_id = created.user.user_id
    channel = container.add_channel()(
        AddChannelCommand(
            user_id=user_id,
            type=ChannelType.WHATSAPP,
            phone_number_id=f"{DEMO_PHONE_NUMBER_ID}{run}",
            external_number="+15550000000",
            access_token="demo-access-token",
            display_name="Demo WhatsApp",
        )
    )
    agent = container.create_agent()(
        CreateAgentCommand(
            user_id=user_id, name="Demo agent", prompt_id=DEMO_PROMPT_ID, phone_number_id=channel.phone_number_id
        )
    )
    instagram = container.add_channel()(
        AddChannelCommand(
            user_id=user_id,
            type=ChannelType.INSTAGRAM,
            phone_number_id=f"{DEMO_INSTAGRAM_ACCOUNT_ID}{run}",
            external_number="@demo.shop",
            access_token="demo-instagram-token",
            display_name="Demo Instagram",
        )
    )
    widget = container.add_channel()(
        AddChannelCommand(
            user_id=user_id, type=ChannelType.WEBCHAT, external_number="localhost", display_name="Demo web chat"
        )
    )
    for extra in (instagram, widget):
        container.create_agent()(
            CreateAgentCommand(
                user_id=user_id,
                name=f"Demo agent ({extra.type})",
                prompt_id=DEMO_PROMPT_ID,
                phone_number_id=extra.phone_number_id,
            )
        )
    container.top_up_credits()(TopUpCommand(user_id=user_id, amount=1000, reason="demo credits"))
    return DemoTenant(
        user_id,
        created.api_key,
        channel.phone_number_id,
        agent.agent_id,
        instagram.phone_number_id,
        widget.phone_number_id,
    )


def start_embedded_worker(container: Container, stop: threading.Event) -> threading.Thread:
    """Work the in-memory queue in a thread, background jobs in another, and sweep now and then."""
    queue = container.queue()
    assert isinstance(queue, InMemoryJobQueue)
    process = container.process_pending_messages()
    sweeps = sweeps_of(container)
    sweep_every_s = container.settings().recovery_interval_ms / 1000

    def work() -> None:
        next_sweep = time.monotonic() + sweep_every_s
        while not stop.is_set():
            scope_key = queue.take(timeout_s=0.5)
            if scope_key is not None:
                process(ProcessScope(scope_key))
            if time.monotonic() >= next_sweep:
                for sweep in sweeps:
                    sweep_once(sweep)
                next_sweep = time.monotonic() + sweep_every_s

    thread = threading.Thread(target=work, name="embedded-worker", daemon=True)
    thread.start()
    threading.Thread(target=_work_background, args=(container, stop), name="embedded-background", daemon=True).start()
    return thread


def _work_background(container: Container, stop: threading.Event) -> None:
    """Extractions and webhook deliveries, apart from the replies as in production."""
    jobs = container.background_jobs()
    assert isinstance(jobs, InMemoryBackgroundJobs)
    extract, deliver = container.extract_lead(), container.deliver_webhook()
    while not stop.is_set():
        job = jobs.take()
        if job is None:
            stop.wait(0.2)
            continue
        try:
            if job[0] == "extraction":
                extract(ExtractLeadCommand(job[1]))
            else:
                deliver(DeliverWebhookCommand(job[1]))
        except Exception:
            # As an RQ job would: the failure is logged, the claim runs out, and the sweep tries again.
            log.exception("background_job_failed", extra={"job": job[0], "id": job[1]})


def whatsapp_delivery(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    """A WhatsApp Cloud API webhook delivery (one entry, one `messages` change) as Meta sends it."""
    metadata = {"display_phone_number": "15550000000", "phone_number_id": phone_number_id}
    change = {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": metadata, **value}}
    return {"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [change]}]}


def whatsapp_text(
    phone_number_id: str,
    customer: str,
    text: str,
    *,
    name: str | None = None,
    wamid: str | None = None,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """A delivery carrying one customer text message."""
    message = {
        "from": customer,
        "id": wamid or f"wamid.dev{uuid.uuid4().hex}",
        "timestamp": str(int((sent_at or datetime.now(UTC)).timestamp())),
        "type": "text",
        "text": {"body": text},
    }
    contact = {"profile": {"name": name or f"Customer {customer}"}, "wa_id": customer}
    return whatsapp_delivery(phone_number_id, {"contacts": [contact], "messages": [message]})


def instagram_text(account_id: str, customer: str, text: str, *, mid: str | None = None) -> dict[str, Any]:
    """An Instagram delivery carrying one customer text message (`entry[].messaging[]`, milliseconds)."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    event = {
        "sender": {"id": customer},
        "recipient": {"id": account_id},
        "timestamp": now_ms,
        "message": {"mid": mid or f"aWdfZGV2{uuid.uuid4().hex}", "text": text},
    }
    return {"object": "instagram", "entry": [{"id": account_id, "time": now_ms, "messaging": [event]}]}


def dev_blueprint(demo: DemoTenant) -> Blueprint:
    """The chat page and its two helpers. Registered only by `mcagent dev`."""
    blueprint = Blueprint("dev", __name__)

    @blueprint.get("/dev")
    def page() -> ResponseReturnValue:
        html = resources.files("entrypoints.http").joinpath("static/dev.html").read_text(encoding="utf-8")
        return Response(html.replace("{{WIDGET_ID}}", demo.widget_id), mimetype="text/html")

    @blueprint.post("/dev/send")
    def send() -> ResponseReturnValue:
        """Sign and post a delivery to our own webhook, as Meta would: WhatsApp (the default) or Instagram
        (`"channel": "instagram"`), to the demo channel or to the one `phone_number_id` names (any tenant's:
        the documentation's examples use it)."""
        body = request.get_json(force=True)
        if not isinstance(body, dict):
            return jsonify(error={"code": "validation_failed", "message": "the body must be a JSON object"}), 422
        settings = current_container().settings()
        customer, text = str(body.get("customer") or ""), str(body.get("text", ""))
        if body.get("channel") == "instagram":
            account = str(body.get("phone_number_id") or demo.instagram_account_id)
            delivery = instagram_text(account, customer or "IGSID0000000001", text)
        else:
            number = str(body.get("phone_number_id") or demo.phone_number_id)
            delivery = whatsapp_text(number, customer or "15551234567", text)
        raw = json.dumps(delivery).encode()
        client = current_app.test_client()
        answer = client.post(
            settings.webhook_path,
            data=raw,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, settings.webhook_secret)},
        )
        return Response(answer.get_data(), status=answer.status_code, mimetype="application/json")

    @blueprint.get("/dev/messages")
    def messages() -> ResponseReturnValue:
        channel = {"instagram": demo.instagram_account_id, "whatsapp": demo.phone_number_id}.get(
            request.args.get("channel", "")
        )
        query = MessageQuery(limit=100, phone_number_id=channel)
        page = current_container().tenant_queries().messages(demo.user_id, query)
        return jsonify(
            ai=current_container().ai().label,
            messages=[
                {
                    "direction": str(m.direction),
                    "text": m.text,
                    "status": str(m.status),
                    "reason": m.failure_reason,
                    "at": m.created_at.isoformat(),
                    "conversation_id": m.conversation_id,
                }
                for m in reversed(page.items)
            ],
        )

    return blueprint


def register_dev(app: Flask, demo: DemoTenant) -> None:
    app.register_blueprint(dev_blueprint(demo))
