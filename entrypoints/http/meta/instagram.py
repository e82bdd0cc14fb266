"""Instagram deliveries (`object: instagram`): not handled yet, so every event is recorded as ignored."""

from __future__ import annotations

from attrs import frozen

from entrypoints.http.meta.converter import Unreadable, read
from entrypoints.http.meta.delivery import Collector, IgnoredKind


@frozen
class _InstagramEntry:
    id: str = ""
    messaging: tuple[object, ...] = ()
    standby: tuple[object, ...] = ()  # events for a thread another app controls (handover protocol)


def read_entry(raw_entry: object, path: str, collected: Collector) -> None:
    try:
        entry = read(raw_entry, _InstagramEntry, path)
    except Unreadable as error:
        collected.ignore(IgnoredKind.ENTRY, "malformed", error.detail)
        return
    for list_name, events in (("messaging", entry.messaging), ("standby", entry.standby)):
        for index in range(len(events)):
            collected.ignore(IgnoredKind.INSTAGRAM, "channel not handled yet", f"{path}.{list_name}[{index}]")
