"""Web chat's storage, on the in-memory and the PostgreSQL adapters alike: a widget keeps its allow-list, and
a visitor's timeline holds its messages across its conversations, and no one else's."""

from __future__ import annotations

from attrs import evolve

from domain.channels import ChannelType
from domain.tenancy import Route
from tests.integration.test_repository_contract import Storage, _record, _seed, storage
from tests.support.postgres import NOW, a_channel, an_agent, minutes

__all__ = ["storage"]


def _widget(storage: Storage, widget_id: str = "wc_1") -> Route:
    channel = evolve(
        a_channel("user-1", widget_id),
        type=ChannelType.WEBCHAT,
        access_token="",
        allowed_origins=("https://shop.example", "https://*.shop.example"),
    )
    agent = an_agent("user-1", widget_id)
    _seed(storage.uow, "user-1", "pn-unused")  # the user
    with storage.uow() as uow:
        uow.channels.add(channel)
        uow.agents.add(agent)
        uow.commit()
    return Route(channel=channel, agent=agent)


def test_a_widget_keeps_its_allow_list_and_a_change_of_it(storage: Storage) -> None:
    route = _widget(storage)
    with storage.uow() as uow:
        found = uow.channels.get("user-1", "wc_1")
        routed = uow.channels.route("wc_1")
    assert found is not None and found.allowed_origins == ("https://shop.example", "https://*.shop.example")
    assert routed is not None and routed.channel.allowed_origins == found.allowed_origins

    with storage.uow() as uow:
        uow.channels.update(route.channel.update(allowed_origins=()))
        uow.commit()
    with storage.uow() as uow:
        changed = uow.channels.get("user-1", "wc_1")
    assert changed is not None and changed.allowed_origins == ()


def test_a_visitors_timeline_holds_its_own_messages_oldest_first_and_pages_after_a_cursor(storage: Storage) -> None:
    route = _widget(storage)
    mine = [_record(storage, route, f"vis_a.m{n}", customer_id="vis_a", now=NOW + minutes(n)) for n in range(5)]
    _record(storage, route, "vis_b.m0", customer_id="vis_b")

    with storage.uow() as uow:
        everything = uow.messages.visitor_timeline("wc_1", "vis_a", None, 200)
        latest = uow.messages.visitor_timeline("wc_1", "vis_a", None, 2)
        after = uow.messages.visitor_timeline("wc_1", "vis_a", mine[1].message_id, 2)
        nobody = uow.messages.visitor_timeline("wc_1", "vis_zzz", None, 200)
        other_widget = uow.messages.visitor_timeline("wc_other", "vis_a", None, 200)

    ids = [recorded.message_id for recorded in mine]
    assert [m.message_id for m in everything] == ids
    assert [m.message_id for m in latest] == ids[-2:]
    assert [m.message_id for m in after] == ids[2:4]
    assert nobody == other_widget == ()
    assert all(m.phone_number_id == "wc_1" for m in everything)
