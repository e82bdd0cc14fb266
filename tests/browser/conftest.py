"""Browser fixtures: Debian's Chromium driven by Playwright, a shop's page on an origin of its own, and
the end-to-end fixtures (the real system: gunicorn, `mcagent worker`, PostgreSQL, Redis, stand-ins)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

# The system's fixtures, shared with the end-to-end tests.
from tests.e2e.conftest import (  # noqa: F401
    graph_standin,
    make_system,
    openai_standin,
    private_redis,
    pytest_runtest_makereport,
)

#: Debian's package; Playwright downloads no browser of its own here.
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is needed by the browser tests and is not at {CHROMIUM}: install Debian's package "
            "(`apt-get install chromium`; .ci/run does) or point CHROMIUM_PATH at a Chromium binary.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


class ShopSite:
    """A small shop's web page on its own origin (another port than the service's), carrying the widget's
    script tag as a business would paste it, so the browser makes every widget request cross-origin."""

    def __init__(self) -> None:
        self.html = b""
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path.split("?", 1)[0] == "/"
                body = site.html if found else b"not found"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8" if found else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.origin}/"

    def embed(self, service_url: str, widget_id: str) -> None:
        self.html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lisbon Bikes</title>
<style>body {{ font-family: Georgia, serif; margin: 0; color: #222; }}
header {{ background: #264653; color: #fff; padding: 1.2rem 2rem; }}
main {{ padding: 1rem 2rem; max-width: 34rem; }}</style>
</head><body>
<header><h1>Lisbon Bikes</h1></header>
<main><p>City bikes, cargo bikes and repairs in Alfama since 1998.</p>
<p><a href="#catalogue">See the catalogue</a></p></main>
<script src="{service_url}/widget.js" data-widget-id="{widget_id}" async></script>
</body></html>""".encode()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def shop_site() -> Iterator[ShopSite]:
    site = ShopSite()
    yield site
    site.close()


class Visitors:
    """Each visitor a browser context of their own (their own storage, so their own session), and what
    went wrong in their pages: an uncaught script error fails the test."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self._contexts: list[BrowserContext] = []
        self.console: list[str] = []
        self.page_errors: list[str] = []

    def new_page(self) -> Page:
        context = self._browser.new_context(viewport={"width": 960, "height": 720})
        context.set_default_timeout(15_000)
        self._contexts.append(context)
        page = context.new_page()
        number = len(self._contexts)
        page.on("console", lambda message: self.console.append(f"[visitor {number}] {message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.page_errors.append(f"[visitor {number}] {error}"))
        return page

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def visitors(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Visitors]:
    crowd = Visitors(browser)
    yield crowd
    crowd.close()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print("----- browser console -----\n" + "\n".join(crowd.console))
