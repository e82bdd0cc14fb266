"""The container of the app serving the current request, for the routes.

Routes reach their use cases through here rather than through `entrypoints.http.app`: the app
factory imports every blueprint to register it, so a blueprint importing the factory back would
make the whole package one import loop.
"""

from __future__ import annotations

from flask import Flask, current_app

from entrypoints.container import Container

_EXTENSION = "container"


def serve_from(app: Flask, container: Container) -> None:
    """Make `container` the one that `app`'s requests are served from."""
    app.extensions[_EXTENSION] = container


def container() -> Container:
    """The container of the app serving the current request."""
    found: Container = current_app.extensions[_EXTENSION]
    return found
