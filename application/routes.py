"""Cache-aside lookup of a channel's route (channel + agent), shared by the webhook and the worker."""

from __future__ import annotations

from collections.abc import Callable

from application.ports.repositories import UnitOfWork
from application.ports.services import RouteCache
from domain.tenancy import Route


class ChannelRoutes:
    def __init__(self, uow: Callable[[], UnitOfWork], cache: RouteCache) -> None:
        self._uow = uow
        self._cache = cache

    def find(self, phone_number_id: str) -> Route | None:
        route = self._cache.get(phone_number_id)
        if route is not None:
            return route
        with self._uow() as uow:
            route = uow.channels.route(phone_number_id)
        if route is not None:
            self._cache.put(route)
        return route

    def forget(self, phone_number_id: str) -> None:
        """Call after every change to a channel or its agent."""
        self._cache.invalidate(phone_number_id)
