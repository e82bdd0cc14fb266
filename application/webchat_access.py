"""Who may use a web chat widget: the widget must exist and be a web chat channel, the page must be on a
site it allows, and a visitor must hold a token of this widget that has not expired."""

from __future__ import annotations

from application.ports.services import Clock
from application.ports.webchat import VisitorTokens
from application.routes import ChannelRoutes
from domain.channels import ChannelType
from domain.errors import NotFound, OriginNotAllowed, Unauthorized
from domain.tenancy import Route
from domain.webchat import VisitorSession


class WidgetAccess:
    def __init__(self, routes: ChannelRoutes, tokens: VisitorTokens, clock: Clock) -> None:
        self._routes = routes
        self._tokens = tokens
        self._clock = clock

    def widget(self, widget_id: str, origin: str | None) -> Route:
        """The widget's route. NotFound for no such widget (or a channel of another type, or a deleted one);
        OriginNotAllowed for a page on a site the widget does not list."""
        route = self._routes.find(widget_id)
        if route is None or route.channel.type is not ChannelType.WEBCHAT or route.channel.deleted:
            raise NotFound(f"web chat widget {widget_id} not found")
        if not route.channel.allows_origin(origin):
            raise OriginNotAllowed(f"this widget is not enabled for pages on {origin}")
        return route

    def visitor(self, widget_id: str, origin: str | None, token: str | None) -> tuple[Route, VisitorSession]:
        """The widget and the visitor a token names. Unauthorized for a missing, altered, expired token, or
        one of another widget: the widget starts a new session."""
        route = self.widget(widget_id, origin)
        session = self._tokens.read(token) if token else None
        if session is None or not session.valid_for(widget_id, self._clock.now()):
            raise Unauthorized("the visitor token is missing, invalid or expired; start a new session")
        return route, session
