"""A browser opens a web chat widget: a visitor it was already (its token, renewed) or a new one."""

from __future__ import annotations

from attrs import field, frozen

from application.ports.services import Clock, IdGenerator
from application.ports.webchat import RateLimits, VisitorTokens
from application.webchat_access import WidgetAccess
from domain.errors import RateLimited
from domain.webchat import VisitorSession


@frozen
class StartVisitorSessionCommand:
    widget_id: str
    origin: str | None
    previous_token: str | None = field(default=None, repr=False)


@frozen
class VisitorSessionStarted:
    session: VisitorSession
    token: str = field(repr=False)
    #: True when the browser was this visitor already (its history is there to show).
    resumed: bool
    title: str | None


class StartVisitorSession:
    def __init__(
        self,
        access: WidgetAccess,
        tokens: VisitorTokens,
        rate_limits: RateLimits,
        ids: IdGenerator,
        clock: Clock,
        *,
        widget_per_minute: int,
    ) -> None:
        self._access = access
        self._tokens = tokens
        self._rate_limits = rate_limits
        self._ids = ids
        self._clock = clock
        self._widget_per_minute = widget_per_minute

    def __call__(self, command: StartVisitorSessionCommand) -> VisitorSessionStarted:
        route = self._access.widget(command.widget_id, command.origin)
        now = self._clock.now()
        previous = self._tokens.read(command.previous_token) if command.previous_token else None
        if previous is not None and previous.valid_for(command.widget_id, now):
            session, resumed = previous.renewed(now), True
        else:
            # New visitors count against the widget: minting sessions must not get round the visitor limit.
            wait = self._rate_limits.hit(f"widget:{command.widget_id}", self._widget_per_minute)
            if wait is not None:
                raise RateLimited("this chat is busy; try again shortly", retry_after_s=wait)
            session, resumed = VisitorSession.start(command.widget_id, self._ids.new_id("vis"), now), False
        return VisitorSessionStarted(
            session=session, token=self._tokens.issue(session), resumed=resumed, title=route.channel.display_name
        )
