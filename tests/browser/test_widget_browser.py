"""The web chat widget in a real browser: headless Chromium (Debian's), driven by Playwright, on a shop's
page of another origin, against the real system (gunicorn, `mcagent worker`, PostgreSQL, Redis, the
OpenAI stand-in).

A visitor opens the chat, writes, and sees the agent's reply appear without a reload; after a reload the
history is back; a person's reply through the API reaches the open widget live; another visitor sees none
of it; the whole chat works from the keyboard alone; a visitor over the rate limit is told so; on a bad
connection a message is sent again and stored once; and a page of a site the widget does not allow shows
no chat button.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import APIResponse, Locator, Page, Route, expect

from tests.browser.conftest import ShopSite, Visitors
from tests.e2e.harness import ROOT, System, Tenant
from tests.support.standin_openai import StandInOpenAI, echo_reply

pytestmark = pytest.mark.timeout(240)

#: The documentation's picture of the widget; rewritten by a run with UPDATE_SCREENSHOTS=1.
SCREENSHOT = ROOT / "documentation" / "images" / "webchat-widget.png"
#: Replies go through gunicorn, the queue, a worker and the OpenAI stand-in: seconds, not milliseconds.
REPLY_TIMEOUT_MS = 30_000
STREAM_SECONDS = 4


def _provision_webchat(system: System, site: ShopSite) -> Tenant:
    """A business with a web chat channel on `site` (and only there), an agent on it, and credits."""
    channel = {
        "type": "webchat",
        "external_number": site.origin,
        "display_name": "Lisbon Bikes",
        "allowed_origins": [site.origin],
    }
    tenant = system.provision_channel(channel, prompt_id="pmpt_webchat")
    assert tenant.phone_number_id.startswith("wc_"), tenant.phone_number_id
    site.embed(system.base_url, tenant.phone_number_id)
    return tenant


Shop = tuple[System, Tenant, ShopSite]


@pytest.fixture
def open_shop(make_system: Callable[..., System], shop_site: ShopSite) -> Callable[..., Shop]:
    """The system running (with these settings), and a shop's page with its widget."""

    def open_(**settings: str) -> Shop:
        # Short streams: every test sees the widget reconnect from its cursor several times, and gunicorn
        # stops within its graceful timeout instead of killing workers held by a stream (and their coverage).
        system = make_system(**{"WEBCHAT_STREAM_SECONDS": str(STREAM_SECONDS), **settings})
        system.start_web()
        system.start_workers()
        return system, _provision_webchat(system, shop_site), shop_site

    return open_


def _messages(page: Page, sender: str | None = None) -> Locator:
    selector = "[data-testid=message]" + (f"[data-from={sender}]" if sender else "")
    return page.locator(selector)


def _texts(page: Page) -> list[tuple[str, str]]:
    """(who, text) of every message the visitor sees, top to bottom."""
    found: list[list[str]] = _messages(page).evaluate_all("all => all.map(m => [m.dataset.from, m.textContent])")
    return [(who, text) for who, text in found]


def _focused(page: Page) -> str | None:
    """The `data-testid` of what has the keyboard focus inside the widget."""
    found: str | None = page.evaluate(
        "() => { const inner = document.activeElement?.shadowRoot?.activeElement;"
        " return inner ? inner.dataset.testid || inner.className : null; }"
    )
    return found


def _open_chat(page: Page) -> None:
    """Open the chat, and wait until its live stream is open (so that no typing signal is missed)."""
    with page.expect_response(lambda answer: "/events?" in answer.url and answer.status == 200):
        page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("dialog", name="Lisbon Bikes")).to_be_visible()


def _write(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Your message").fill(text)
    page.get_by_role("button", name="Send", exact=True).click()


def test_a_visitor_chats_live_keeps_the_history_on_reload_and_gets_a_persons_reply_live(
    open_shop: Callable[..., Shop], openai_standin: StandInOpenAI, visitors: Visitors, tmp_path: Path
) -> None:
    system, tenant, site = open_shop()
    question = "Do you rent cargo bikes for a weekend?"
    page = visitors.new_page()
    page.goto(site.url)
    page.evaluate("window.stillTheSamePage = true")

    _open_chat(page)
    thinking = openai_standin.hold()
    _write(page, question)
    expect(_messages(page, "visitor")).to_have_text([question])  # at once, before any answer
    thinking.wait_arrived(timeout=REPLY_TIMEOUT_MS / 1000)
    expect(page.get_by_test_id("typing")).to_be_visible()  # while the AI writes
    thinking.release()
    expect(_messages(page, "agent")).to_have_text([echo_reply([question])], timeout=REPLY_TIMEOUT_MS)
    expect(page.get_by_test_id("typing")).to_be_hidden()
    assert page.evaluate("window.stillTheSamePage") is True, "the reply came by reloading the page"

    page.reload()
    expect(page.get_by_test_id("panel")).to_be_visible()  # a reload keeps the chat open
    expect(_messages(page)).to_have_count(2)
    assert _texts(page) == [("visitor", question), ("agent", echo_reply([question]))]

    # A person of the shop takes the conversation over and answers through the API.
    inbound = [m for m in system.messages(tenant) if m["direction"] == "inbound"]
    assert [m["text"] for m in inbound] == [question]
    conversation = f"/users/{tenant.user_id}/conversations/{inbound[0]['conversation_id']}"
    paused = system.api("PATCH", conversation, tenant.api_key, json={"bot": "paused"})
    assert paused.status_code == 200, paused.text
    page.evaluate("window.stillTheSamePage = true")
    human = "Hi, Marta here: yes, 45 euros for Saturday and Sunday, helmet included."
    sent = system.api("POST", f"{conversation}/messages", tenant.api_key, json={"text": human})
    assert sent.status_code == 201, sent.text
    expect(_messages(page, "agent")).to_have_text([echo_reply([question]), human], timeout=REPLY_TIMEOUT_MS)
    assert page.evaluate("window.stillTheSamePage") is True
    _screenshot(page, tmp_path)

    # Another visitor, in a browser context of their own, sees nothing of that chat, and has their own.
    other = visitors.new_page()
    other.goto(site.url)
    _open_chat(other)
    theirs = "Are you open on Sundays?"
    _write(other, theirs)
    expect(_messages(other, "agent")).to_have_text([echo_reply([theirs])], timeout=REPLY_TIMEOUT_MS)
    assert _texts(other) == [("visitor", theirs), ("agent", echo_reply([theirs]))]
    other.reload()
    expect(_messages(other)).to_have_count(2)
    assert _texts(page) == [("visitor", question), ("agent", echo_reply([question])), ("agent", human)]
    assert visitors.page_errors == []


def _screenshot(page: Page, tmp_path: Path) -> None:
    """The open widget with a short conversation: always into the test's directory, and into the
    documentation when asked (UPDATE_SCREENSHOTS=1), so that the picture there is one a test took."""
    page.get_by_role("textbox", name="Your message").blur()
    taken = tmp_path / SCREENSHOT.name
    page.screenshot(path=taken)
    assert taken.stat().st_size > 10_000, "an empty screenshot"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(taken, SCREENSHOT)


def test_the_chat_works_from_the_keyboard_alone(open_shop: Callable[..., Shop], visitors: Visitors) -> None:
    _, _, site = open_shop()
    page = visitors.new_page()
    page.goto(site.url)
    launcher = page.get_by_test_id("launcher")
    expect(launcher).to_be_visible()

    for _ in range(10):  # through the page's own links first
        page.keyboard.press("Tab")
        if _focused(page) == "launcher":
            break
    assert _focused(page) == "launcher", "Tab never reaches the chat button"
    assert launcher.evaluate("b => getComputedStyle(b).outlineStyle") != "none", "no visible focus on the button"
    expect(launcher).to_have_attribute("aria-expanded", "false")

    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Lisbon Bikes")).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    assert _focused(page) == "input"

    page.keyboard.type("Two bikes, please.")
    page.keyboard.press("Shift+Enter")  # a new line, not a send
    page.keyboard.type("For Friday.")
    expect(_messages(page)).to_have_count(0)
    page.keyboard.press("Enter")
    written = "Two bikes, please.\nFor Friday."
    expect(_messages(page, "agent")).to_have_text([echo_reply([written])], timeout=REPLY_TIMEOUT_MS)
    assert _texts(page) == [("visitor", written), ("agent", echo_reply([written]))]
    expect(page.get_by_role("textbox", name="Your message")).to_have_value("")

    page.keyboard.press("Escape")
    expect(page.get_by_test_id("panel")).to_be_hidden()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert _focused(page) == "launcher", "Escape does not give the focus back to the chat button"
    assert visitors.page_errors == []


def test_a_visitor_over_the_rate_limit_is_told_so_and_keeps_the_message(
    open_shop: Callable[..., Shop], visitors: Visitors
) -> None:
    system, tenant, site = open_shop(WEBCHAT_VISITOR_PER_MINUTE="2")
    page = visitors.new_page()
    page.goto(site.url)
    _open_chat(page)
    for text in ("Hello?", "Anyone there?"):
        _write(page, text)
    expect(_messages(page, "agent")).not_to_have_count(0, timeout=REPLY_TIMEOUT_MS)

    _write(page, "Third time lucky?")
    refused = _messages(page, "visitor").filter(has_text="Third time lucky?")
    expect(refused).to_contain_text(re.compile(r"Not sent: too many messages\. Try again in \d+ s\."))
    expect(refused.get_by_role("button", name="Retry")).to_be_visible()
    assert "Third time lucky?" not in [m["text"] for m in system.messages(tenant)]
    assert visitors.page_errors == []


def test_a_message_whose_answer_is_lost_is_sent_again_and_stored_once(
    open_shop: Callable[..., Shop], visitors: Visitors
) -> None:
    """A bad connection: the live stream cannot connect, and the answer to the visitor's send is lost on its
    way back. The widget sends the message again under the same id; the service stores it once."""
    system, tenant, site = open_shop()
    page = visitors.new_page()
    trouble = {"stream_down": True}
    lost: list[APIResponse] = []
    posted: list[str] = []

    def stream(route: Route) -> None:
        if trouble["stream_down"]:
            route.abort("connectionrefused")
        else:
            route.continue_()

    def send(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        body = route.request.post_data_json
        assert isinstance(body, dict), route.request.post_data
        posted.append(body["client_message_id"])
        if lost:
            route.continue_()
            return
        lost.append(route.fetch())  # the service takes the message and answers…
        route.abort("connectionreset")  # …and the answer never reaches the page

    page.route("**/webchat/*/events?*", stream)
    page.route("**/webchat/*/messages", send)
    page.goto(site.url)
    page.get_by_role("button", name="Open chat").click()
    expect(page.get_by_role("status")).to_have_text("Reconnecting…")
    question = "Is the shop open on holidays?"
    _write(page, question)

    expect(_messages(page, "visitor")).to_have_text([question])  # stored: no "Sending…", no error
    assert [answer.status for answer in lost] == [202]
    assert len(posted) == 2 and posted[0] == posted[1], f"not sent again under the same id: {posted}"
    trouble["stream_down"] = False
    expect(_messages(page, "agent")).to_have_text([echo_reply([question])], timeout=REPLY_TIMEOUT_MS)
    expect(page.get_by_role("status")).to_be_hidden()
    assert _texts(page) == [("visitor", question), ("agent", echo_reply([question]))]
    assert [m["text"] for m in system.messages(tenant) if m["direction"] == "inbound"] == [question]
    assert visitors.page_errors == []


def test_a_page_of_a_site_the_widget_does_not_allow_shows_no_chat_button(
    open_shop: Callable[..., Shop], visitors: Visitors
) -> None:
    system, tenant, site = open_shop()
    stranger = ShopSite()  # another origin, not in the widget's allowed_origins
    try:
        stranger.embed(system.base_url, tenant.phone_number_id)
        page = visitors.new_page()
        with page.expect_console_message(lambda message: "web chat: not shown" in message.text, timeout=30_000):
            page.goto(stranger.url)
        expect(page.get_by_test_id("launcher")).to_be_hidden()
        expect(page.get_by_test_id("panel")).to_be_hidden()
    finally:
        stranger.close()

    allowed = visitors.new_page()
    allowed.goto(site.url)
    expect(allowed.get_by_test_id("launcher")).to_be_visible()
    assert system.messages(tenant) == []
    assert visitors.page_errors == []
