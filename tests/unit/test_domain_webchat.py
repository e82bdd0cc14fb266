"""The web chat widget's rules, with plain objects: sites, visitors, what a visitor may send and sees."""

from __future__ import annotations

from datetime import timedelta

import pytest
from attrs import evolve

from domain.channels import ChannelType
from domain.errors import ValidationFailed
from domain.messages import MessageStatus, Sender
from domain.webchat import (
    SESSION_LIFETIME,
    VISITOR_TEXT,
    Timeline,
    VisitorSession,
    check_origins,
    check_visitor_text,
    origin_allowed,
    shown_to_visitor,
    visitor_message,
    visitor_of,
)
from tests.unit.domain_builders import NOW, a_message, a_part, a_route

# --- which sites may embed the widget --------------------------------------------------------------


def test_origins_are_stored_as_scheme_host_and_port_in_lower_case_once_each() -> None:
    assert check_origins(["https://Shop.Example", "https://shop.example/", "http://localhost:8080"]) == (
        "https://shop.example",
        "http://localhost:8080",
    )


@pytest.mark.parametrize(
    "origin",
    [
        "shop.example",
        "ftp://shop.example",
        "https://shop.example/path",
        "https://shop.example?x=1",
        "https://user:pw@shop.example",
        "https://",
        "https://shop..example",
        "https://*",
        "https://ex*ample.com",
        "https://shöp.example",
        "https://shop.example:99999",
        "",
    ],
)
def test_anything_but_an_origin_is_refused_naming_the_field(origin: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_origins([origin])
    assert refused.value.field == "allowed_origins"


def test_an_allow_list_holds_strings_and_at_most_twenty_sites() -> None:
    with pytest.raises(ValidationFailed):
        check_origins([42])
    with pytest.raises(ValidationFailed):
        check_origins([f"https://s{n}.example" for n in range(21)])


def test_an_empty_list_lets_any_site_embed_the_widget() -> None:
    assert origin_allowed((), "https://anyone.example")


def test_a_listed_site_may_use_the_widget_and_another_may_not() -> None:
    allowed = check_origins(["https://shop.example"])
    assert origin_allowed(allowed, "https://shop.example")
    assert origin_allowed(allowed, "https://SHOP.example")
    assert not origin_allowed(allowed, "http://shop.example")  # another scheme is another site
    assert not origin_allowed(allowed, "https://shop.example:8443")
    assert not origin_allowed(allowed, "https://evil.example")
    assert not origin_allowed(allowed, "https://shop.example.evil.example")
    assert not origin_allowed(allowed, "null")  # a sandboxed frame or a file:// page


def test_a_wildcard_covers_the_subdomains_but_not_the_bare_domain() -> None:
    allowed = check_origins(["https://*.shop.example"])
    assert origin_allowed(allowed, "https://www.shop.example")
    assert origin_allowed(allowed, "https://eu.www.shop.example")
    assert not origin_allowed(allowed, "https://shop.example")
    assert not origin_allowed(allowed, "https://evilshop.example")


def test_a_request_without_an_origin_is_not_a_page_and_is_let_through() -> None:
    assert origin_allowed(check_origins(["https://shop.example"]), None)


def test_only_a_web_chat_channel_takes_an_allow_list() -> None:
    webchat, whatsapp = a_route(ChannelType.WEBCHAT).channel, a_route().channel
    assert webchat.update(allowed_origins=("https://Shop.example",)).allowed_origins == ("https://shop.example",)
    assert whatsapp.update(allowed_origins=()).allowed_origins == ()
    with pytest.raises(ValidationFailed):
        whatsapp.update(allowed_origins=("https://shop.example",))


# --- a visitor ------------------------------------------------------------------------------------


def test_a_session_is_valid_for_its_widget_until_it_expires_and_a_visit_renews_it() -> None:
    session = VisitorSession.start("wc_1", "vis_1", NOW)

    assert session.valid_for("wc_1", NOW + SESSION_LIFETIME - timedelta(seconds=1))
    assert not session.valid_for("wc_1", NOW + SESSION_LIFETIME)
    assert not session.valid_for("wc_2", NOW)
    later = NOW + timedelta(days=20)
    assert session.renewed(later).valid_for("wc_1", later + SESSION_LIFETIME - timedelta(seconds=1))


def test_a_visitors_text_is_trimmed_and_must_be_short_and_storable() -> None:
    assert check_visitor_text("  hello \n") == "hello"
    for bad in ("", "   ", "x" * (VISITOR_TEXT + 1), "a\x00b", 5, None):
        with pytest.raises(ValidationFailed) as refused:
            check_visitor_text(bad)
        assert refused.value.field == "text"
    assert len(check_visitor_text("é" * VISITOR_TEXT)) == VISITOR_TEXT


def test_a_visitors_message_is_a_customers_message_of_the_widget_bound_to_the_visitor() -> None:
    session = VisitorSession.start("wc_1", "vis_1", NOW)
    message = visitor_message(session, "hi", "3b6f0c1e-8d1f-4d0e-9a63-6f5b3f0d2a11", NOW)

    assert (message.phone_number_id, message.customer_id, message.text) == ("wc_1", "vis_1", "hi")
    assert message.answerable
    # Another visitor choosing the same id names another message: ids never meet across visitors.
    other = visitor_message(VisitorSession.start("wc_1", "vis_2", NOW), "hi", message.raw["client_message_id"], NOW)
    assert other.platform_message_id != message.platform_message_id
    assert visitor_of(message.platform_message_id) == "vis_1"
    for bad in ("short", "has space in it", "x" * 65, 12345678, None):
        with pytest.raises(ValidationFailed):
            visitor_message(session, "hi", bad, NOW)


# --- what the visitor sees ------------------------------------------------------------------------


def test_the_visitor_sees_its_messages_and_the_replies_that_went_out_never_a_failed_or_unsent_one() -> None:
    assert shown_to_visitor(a_message(1))
    assert shown_to_visitor(a_part(2, MessageStatus.SENT))
    assert shown_to_visitor(a_part(3, MessageStatus.SENDING))
    assert shown_to_visitor(a_part(4, MessageStatus.SENT, sender=Sender.HUMAN))
    assert not shown_to_visitor(a_part(5, MessageStatus.PENDING))
    assert not shown_to_visitor(a_part(6, MessageStatus.FAILED))
    assert not shown_to_visitor(a_message(7, content_type="image", text=None))


def test_the_cursor_stops_before_a_reply_not_yet_sent_so_it_is_not_skipped_when_it_goes_out() -> None:
    visitor, part, later = a_message(10), a_part(11, MessageStatus.PENDING), a_message(12)

    first = Timeline.after(9, [visitor, part, later])
    assert [m.message_id for m in first.shown] == [10, 12]
    assert first.cursor == 10

    # The part goes out: asked again from the cursor, it is there (and 12 again, which the widget knows).
    second = Timeline.after(first.cursor, [evolve(part, status=MessageStatus.SENT), later])
    assert [m.message_id for m in second.shown] == [11, 12]
    assert second.cursor == 12


def test_a_failed_part_is_settled_hidden_and_the_cursor_moves_past_it() -> None:
    timeline = Timeline.after(0, [a_message(1), a_part(2, MessageStatus.FAILED), a_part(3, MessageStatus.SENT)])
    assert [m.message_id for m in timeline.shown] == [1, 3]
    assert timeline.cursor == 3


def test_nothing_new_keeps_the_cursor() -> None:
    assert Timeline.after(42, []) == Timeline(shown=(), cursor=42)
