"""Lead extraction and the business's notifications on the in-memory adapters: when a conversation is
read, what is kept of the AI's answer, what it costs, and what the business is told (and told once)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from attrs import define, field
from freezegun import freeze_time

from adapters.memory.services import InMemoryBackgroundJobs, InMemoryLocks, SystemClock
from application.notifying import Notifier, ScheduleWebhookDeliveries
from application.ports.lead_storage import DeliveryQuery, NotificationQuery
from application.ports.leads import ExtractionAnswer, ExtractionFailed, ExtractionRequest, WebhookResponse
from application.ports.services import DeliveryFailed
from application.use_cases.control_conversation_bot import ControlConversationBot, ControlConversationBotCommand
from application.use_cases.deliver_webhook import DeliverWebhook, DeliverWebhookCommand
from application.use_cases.extract_lead import ExtractLead, ExtractLeadCommand
from application.use_cases.notify_account_events import NotifyAccountEvents
from application.use_cases.process_pending_messages import TurnPolicy
from application.use_cases.relink_agent import RelinkAgent, RelinkAgentCommand
from application.use_cases.schedule_extractions import ScheduleExtractions
from domain.channels import BotState
from domain.credits import LEAD_EXTRACTION
from domain.extraction import MAX_ATTEMPTS, NOT_STATED
from domain.messages import OrderingScope
from domain.notifications import NotificationKind
from domain.webhooks import DeliveryStatus, WebhookEndpoint, signature_matches
from tests.unit.conftest import App, MakeApp

INTERVAL = timedelta(minutes=10)
SECRET = "whsec_test-secret"

LEAD: dict[str, object] = {
    "name": "Ana Souza",
    "email": "ana@shop.example",
    "company": "Shop Example",
    "intent": "book a demo",
    "urgency": 3,
    "budget": 3,
    "fit": 3,
    "engagement": 2,
    "demo_datetime": "2026-01-06T15:00:00-03:00",
    "smart_notification": "Ana wants a demo on Tuesday; confirm it.",
}


@define
class ScriptedExtractor:
    answers: list[Mapping[str, object] | ExtractionFailed] = field(factory=list)
    requests: list[ExtractionRequest] = field(factory=list)

    def extract(self, request: ExtractionRequest) -> ExtractionAnswer:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else LEAD
        if isinstance(answer, ExtractionFailed):
            raise answer
        return ExtractionAnswer(dict(answer), f"resp_{len(self.requests)}", 100, 20)


@define
class RecordingWebhookSender:
    statuses: list[int | None] = field(factory=list)
    posts: list[tuple[str, bytes, dict[str, str]]] = field(factory=list)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        self.posts.append((url, body, dict(headers)))
        status = self.statuses.pop(0) if self.statuses else 200
        return WebhookResponse(status, None if status == 200 else f"HTTP {status}", 12)


class Leads:
    """The lead use cases wired beside an `App`, as the container wires them."""

    def __init__(self, app: App, *, price: int = 0) -> None:
        self.app = app
        self.extractor = ScriptedExtractor()
        self.jobs = InMemoryBackgroundJobs()
        self.webhooks = RecordingWebhookSender()
        self.deliveries = ScheduleWebhookDeliveries(app.uow, self.jobs, app.clock)
        notifier = Notifier(app.ids)
        self.extract = ExtractLead(
            app.uow,
            self.extractor,
            app.locks,
            notifier,
            self.deliveries,
            app.balance_cache,
            app.clock,
            credits_per_extraction=price,
        )
        self.schedule = ScheduleExtractions(app.uow, self.jobs, app.clock, interval=INTERVAL)
        self.notify = NotifyAccountEvents(app.uow, notifier, self.deliveries, app.clock)
        self.deliver = DeliverWebhook(app.uow, self.webhooks, app.clock)

    def run_jobs(self) -> None:
        while (job := self.jobs.take()) is not None:
            if job[0] == "extraction":
                self.extract(ExtractLeadCommand(job[1]))
            else:
                self.deliver(DeliverWebhookCommand(job[1]))

    def extractions(self) -> list[object]:
        with self.app.uow() as uow:
            return list(uow.extractions.history(self.app.user.user_id, self.conversation_id(), None, 100).items)

    def conversation_id(self) -> int:
        return self.app.conversations()[-1].conversation_id

    def notifications(self) -> list[NotificationKind]:
        with self.app.uow() as uow:
            page = uow.notifications.list(self.app.user.user_id, NotificationQuery(limit=100))
            return sorted(n.kind for n in page.items)

    def configure_webhook(self) -> None:
        with self.app.uow() as uow:
            uow.webhooks.save_endpoint(
                WebhookEndpoint.configure(
                    self.app.user.user_id, "https://crm.shop.example/hooks", SECRET, self.app.clock.now()
                )
            )
            uow.commit()


def _talk(app: App, *texts: str) -> None:
    for text in texts:
        app.receive(text)
    app.drain()


# --- when a conversation is read -------------------------------------------------------------------


def test_a_conversation_is_due_once_quiet_for_the_interval_and_queued_once() -> None:
    with freeze_time("2026-01-05 09:00:00") as frozen:
        # The system clock, moved by freezegun: due-ness as the sweep sees it in production.
        app = App(
            credits=10,
            ordering=OrderingScope.CONVERSATION,
            policy=TurnPolicy(),
            locks=InMemoryLocks(),
            clock=SystemClock(),
        )
        leads = Leads(app)
        _talk(app, "Hi, I'm Ana")

        frozen.tick(INTERVAL - timedelta(seconds=1))
        assert leads.schedule() == 0

        frozen.tick(timedelta(seconds=1))
        assert leads.schedule() == 1
        assert leads.schedule() == 0  # claimed: another sweep does not queue it again
        assert leads.jobs.enqueued == [("extraction", leads.conversation_id())]

        leads.run_jobs()
        frozen.tick(INTERVAL * 3)
        assert leads.schedule() == 0  # nothing new since the extraction

        _talk(app, "Also, my e-mail is ana@shop.example")
        frozen.tick(INTERVAL)
        assert leads.schedule() == 1


def test_a_claim_whose_job_was_lost_runs_out_and_the_conversation_is_queued_again(make_app: MakeApp) -> None:
    app = make_app()
    leads = Leads(app)
    _talk(app, "Hi")
    app.clock.advance(minutes=10)
    assert leads.schedule() == 1
    leads.jobs.take()  # the job is lost (Redis restarted empty)

    app.clock.advance(minutes=9)
    assert leads.schedule() == 0
    app.clock.advance(minutes=1)
    assert leads.schedule() == 1


def test_the_extraction_reads_the_conversation_from_our_database_with_the_agents_replies(app: App) -> None:
    leads = Leads(app)
    _talk(app, "Hi, I'm Ana", "Can we do a demo tomorrow at 3?")

    leads.extract(ExtractLeadCommand(leads.conversation_id()))

    [request] = leads.extractor.requests
    assert "Customer: Hi, I'm Ana" in request.transcript
    assert "Customer: Can we do a demo tomorrow at 3?" in request.transcript
    assert f"Agent: {app.sent_texts()[0]}" in request.transcript
    assert request.prompt_id is None and "extract lead data" in request.instructions


def test_an_agent_with_its_own_extraction_prompt_is_read_with_it(app: App) -> None:
    leads = Leads(app)
    RelinkAgent(app.uow, app.routes, app.queue, app.clock, app.ordering)(
        RelinkAgentCommand(app.user.user_id, app.agent.agent_id, extraction_prompt_id="pmpt_leads")
    )
    _talk(app, "Hi")

    leads.extract(ExtractLeadCommand(leads.conversation_id()))

    assert leads.extractor.requests[0].prompt_id == "pmpt_leads"


def test_invalid_fields_are_kept_as_missing_with_the_reason_and_the_rest_is_stored(app: App) -> None:
    leads = Leads(app)
    leads.extractor.answers.append({**LEAD, "urgency": 5, "email": "ana at shop", "company": None})
    _talk(app, "Hi, I'm Ana")

    stored = leads.extract(ExtractLeadCommand(leads.conversation_id()))

    assert stored is not None
    assert (stored.fields.name, stored.fields.fit, stored.fields.urgency, stored.fields.email) == (
        "Ana Souza",
        3,
        None,
        None,
    )
    assert stored.fields.missing["company"] == NOT_STATED
    assert "score from 1 to 3" in stored.fields.missing["urgency"]
    assert "not an e-mail address" in stored.fields.missing["email"]


def test_a_job_run_twice_reads_the_conversation_once(app: App) -> None:
    leads = Leads(app)
    _talk(app, "Hi")

    leads.extract(ExtractLeadCommand(leads.conversation_id()))
    leads.extract(ExtractLeadCommand(leads.conversation_id()))

    assert len(leads.extractor.requests) == 1
    assert len(leads.extractions()) == 1


def test_a_conversation_another_worker_is_reading_is_left_to_it(app: App) -> None:
    leads = Leads(app)
    _talk(app, "Hi")
    held = app.locks.acquire(f"extract:{leads.conversation_id()}")

    assert leads.extract(ExtractLeadCommand(leads.conversation_id())) is None

    assert held is not None and leads.extractor.requests == []


def test_new_messages_after_an_extraction_are_read_by_the_next_one_kept_as_history(app: App) -> None:
    leads = Leads(app)
    _talk(app, "Hi")
    leads.extract(ExtractLeadCommand(leads.conversation_id()))
    leads.extractor.answers.append({**LEAD, "smart_notification": "Ana asked for pricing."})
    _talk(app, "What does it cost?")

    leads.extract(ExtractLeadCommand(leads.conversation_id()))

    newest, oldest = leads.extractions()
    assert newest.through_sequence_no > oldest.through_sequence_no  # type: ignore[attr-defined]
    assert newest.fields.smart_notification == "Ana asked for pricing."  # type: ignore[attr-defined]


# --- failures ------------------------------------------------------------------------------------------


def test_after_the_last_try_the_messages_are_given_up_until_the_customer_writes(make_app: MakeApp) -> None:
    app = make_app()
    leads = Leads(app)
    leads.extractor.answers.extend([ExtractionFailed("timed out", retryable=True)] * MAX_ATTEMPTS)
    _talk(app, "Hi")
    for _ in range(MAX_ATTEMPTS):
        app.clock.advance(hours=1)
        assert leads.schedule() == 1
        leads.run_jobs()

    app.clock.advance(days=1)
    assert leads.schedule() == 0
    assert len(leads.extractor.requests) == MAX_ATTEMPTS
    _talk(app, "Hello?")
    app.clock.advance(minutes=10)
    assert leads.schedule() == 1


def test_a_failed_extraction_is_tried_again_after_a_doubling_wait(make_app: MakeApp) -> None:
    app = make_app()
    leads = Leads(app)
    leads.extractor.answers.extend([ExtractionFailed("timed out", retryable=True)] * 2)
    _talk(app, "Hi")
    app.clock.advance(minutes=10)

    assert leads.schedule() == 1
    leads.run_jobs()  # fails: next try in a minute
    app.clock.advance(seconds=59)
    assert leads.schedule() == 0
    app.clock.advance(seconds=1)
    assert leads.schedule() == 1
    leads.run_jobs()  # fails again: two minutes
    app.clock.advance(seconds=119)
    assert leads.schedule() == 0
    app.clock.advance(seconds=1)
    assert leads.schedule() == 1
    leads.run_jobs()

    assert len(leads.extractions()) == 1


def test_a_refused_extraction_is_not_tried_again_until_the_customer_writes(make_app: MakeApp) -> None:
    app = make_app()
    leads = Leads(app)
    leads.extractor.answers.append(ExtractionFailed("prompt not found", retryable=False))
    _talk(app, "Hi")
    app.clock.advance(minutes=10)
    leads.schedule()
    leads.run_jobs()

    app.clock.advance(days=1)
    assert leads.schedule() == 0
    with app.uow() as uow:
        activity = uow.extractions.activity(leads.conversation_id())
    assert activity is not None and activity.last_failure == "prompt not found"

    _talk(app, "Hello?")
    app.clock.advance(minutes=10)
    assert leads.schedule() == 1


# --- credits ----------------------------------------------------------------------------------------------


def test_an_extraction_that_costs_credits_is_charged_once_in_the_ledger(make_app: MakeApp) -> None:
    app = make_app(credits=10)
    leads = Leads(app, price=2)
    _talk(app, "Hi")  # one reply: 1 credit

    leads.extract(ExtractLeadCommand(leads.conversation_id()))
    leads.extract(ExtractLeadCommand(leads.conversation_id()))

    extraction_charges = [e for e in app.charges() if e.reason == LEAD_EXTRACTION]
    assert [(e.amount, e.extraction_id is not None) for e in extraction_charges] == [(-2, True)]
    assert app.credits().available == 7


def test_without_the_credits_for_it_no_extraction_is_asked_for(make_app: MakeApp) -> None:
    app = make_app(credits=1)
    leads = Leads(app, price=2)
    _talk(app, "Hi")  # spends the only credit

    assert leads.extract(ExtractLeadCommand(leads.conversation_id())) is None

    assert leads.extractor.requests == []
    assert [e for e in app.charges() if e.reason == LEAD_EXTRACTION] == []


# --- what the business is told -------------------------------------------------------------------------------


def test_a_new_lead_tells_the_business_its_smart_notification_demo_and_that_it_is_hot(app: App) -> None:
    leads = Leads(app)
    _talk(app, "Hi")

    leads.extract(ExtractLeadCommand(leads.conversation_id()))

    assert leads.notifications() == sorted(
        [NotificationKind.SMART_NOTIFICATION, NotificationKind.DEMO_BOOKED, NotificationKind.HOT_LEAD]
    )


def test_a_reading_that_changes_nothing_tells_nothing_and_a_moved_demo_is_told(app: App) -> None:
    leads = Leads(app)
    _talk(app, "Hi")
    leads.extract(ExtractLeadCommand(leads.conversation_id()))
    _talk(app, "Thanks")
    leads.extract(ExtractLeadCommand(leads.conversation_id()))
    assert len(leads.notifications()) == 3

    leads.extractor.answers.append({**LEAD, "demo_datetime": "2026-01-07T10:00:00-03:00"})
    _talk(app, "Can we move it to Wednesday at 10?")
    leads.extract(ExtractLeadCommand(leads.conversation_id()))

    assert leads.notifications().count(NotificationKind.DEMO_MOVED) == 1
    assert len(leads.notifications()) == 4


def test_each_notification_is_posted_signed_to_the_business_webhook_and_retried_until_accepted(app: App) -> None:
    leads = Leads(app)
    leads.configure_webhook()
    leads.webhooks.statuses = [500, 200, 200, 200]
    _talk(app, "Hi")

    leads.extract(ExtractLeadCommand(leads.conversation_id()))
    leads.run_jobs()

    assert len(leads.webhooks.posts) == 3
    for url, body, headers in leads.webhooks.posts:
        assert url == "https://crm.shop.example/hooks"
        assert signature_matches(SECRET, body, headers["X-Mcagent-Signature"])
    failed_event = leads.webhooks.posts[0][2]["X-Mcagent-Event-Id"]

    app.clock.advance(seconds=29)
    leads.deliveries()
    leads.run_jobs()
    assert len(leads.webhooks.posts) == 3  # the retry waits 30 s
    app.clock.advance(seconds=1)
    leads.deliveries()
    leads.run_jobs()

    assert [h["X-Mcagent-Event-Id"] for _, _, h in leads.webhooks.posts].count(failed_event) == 2
    with app.uow() as uow:
        log = uow.webhooks.list(app.user.user_id, DeliveryQuery()).items
    assert sorted(len(d.attempts) for d in log) == [1, 1, 2]
    assert {d.delivery.status for d in log} == {DeliveryStatus.DELIVERED}

    leads.deliveries()
    leads.run_jobs()
    assert len(leads.webhooks.posts) == 4  # delivered ones are not sent again


def test_a_delivery_whose_webhook_was_removed_is_given_up_without_a_post(app: App) -> None:
    leads = Leads(app)
    leads.configure_webhook()
    _talk(app, "Hi")
    leads.extract(ExtractLeadCommand(leads.conversation_id()))
    with app.uow() as uow:
        uow.webhooks.delete_endpoint(app.user.user_id)
        uow.commit()

    leads.run_jobs()

    assert leads.webhooks.posts == []
    with app.uow() as uow:
        log = uow.webhooks.list(app.user.user_id, DeliveryQuery()).items
    assert {d.delivery.status for d in log} == {DeliveryStatus.GIVEN_UP}
    assert all(d.delivery.last_error == "the webhook was removed" for d in log)


def test_a_customer_left_unanswered_for_want_of_credits_is_told_once(make_app: MakeApp) -> None:
    app = make_app(credits=1)
    leads = Leads(app)
    app.clock.advance(minutes=1)
    _talk(app, "Hi")  # the last credit
    _talk(app, "Hello?")  # refused

    leads.notify()
    leads.notify()

    assert leads.notifications() == [NotificationKind.CREDITS_EXHAUSTED]


def test_credits_at_the_low_mark_are_told_once_per_top_up(make_app: MakeApp) -> None:
    app = make_app(credits=60)
    leads = Leads(app)
    leads.notify()
    assert leads.notifications() == []
    for _ in range(10):
        _talk(app, "Hi")  # 50 left: at the default mark
    leads.notify()
    leads.notify()
    assert leads.notifications() == [NotificationKind.CREDITS_LOW]


def test_a_paused_conversation_with_a_customer_waiting_is_told_once(make_app: MakeApp) -> None:
    app = make_app(credits=1000)
    leads = Leads(app)
    _talk(app, "Hi")
    control = ControlConversationBot(app.uow, app.queue, app.clock, app.ordering)
    control(ControlConversationBotCommand(app.user.user_id, leads.conversation_id(), BotState.PAUSED, None))
    _talk(app, "Is anybody there?", "Hello?")

    leads.notify()
    leads.notify()

    assert leads.notifications() == [NotificationKind.WAITING_FOR_HUMAN]


def test_an_expired_token_makes_the_channel_failing_once(make_app: MakeApp) -> None:
    app = make_app(credits=1000)
    leads = Leads(app)
    app.sender.failures.append(DeliveryFailed("token expired", code="190"))
    _talk(app, "Hi")

    leads.notify()
    leads.notify()

    assert leads.notifications() == [NotificationKind.CHANNEL_FAILING]
