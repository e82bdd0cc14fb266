"""What of a channel's access token may be seen outside the sender: its last four characters, at most."""

from __future__ import annotations

from datetime import UTC, datetime

from application.use_cases.add_channel import AddChannelCommand
from domain.channels import ChannelType
from domain.tenancy import Agent, Channel, Route
from entrypoints.http.api.payloads import AddChannelRequest, channel_json

TOKEN = "EAAGsecretTOKENvalue0123456789WXYZ"
AT = datetime(2026, 3, 1, tzinfo=UTC)
CHANNEL = Channel("pn_1", "usr_1", ChannelType.WHATSAPP, "+15550001", TOKEN, "Shop", AT)


def test_the_api_shows_only_the_last_four_characters_of_a_token() -> None:
    assert channel_json(CHANNEL)["access_token"] == "…WXYZ"


def test_a_channel_in_a_log_line_or_a_traceback_does_not_carry_its_token() -> None:
    route = Route(channel=CHANNEL, agent=Agent("agt_1", "usr_1", "pn_1", "Sales", "pmpt_1", None, AT))
    command = AddChannelCommand("usr_1", ChannelType.WHATSAPP, "+15550001", access_token=TOKEN)
    request = AddChannelRequest(ChannelType.WHATSAPP, "+15550001", "pn_1", TOKEN)

    for thing in (CHANNEL, route, command, request):
        assert TOKEN not in repr(thing) and TOKEN not in str(thing)
        assert "WXYZ" not in repr(thing)
