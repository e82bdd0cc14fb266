"""`mcagent`: migrate, serve, worker, dev, seed, reencrypt-tokens.

A bad configuration, or a database not at this release's schema, ends the command with one message and exit code 2.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading

from adapters.postgres.migrations import SchemaNotCurrent
from entrypoints.settings import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcagent", description="Multi-Channel AI Agent")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the SQL migrations to DATABASE_URL (safe to run twice)")
    serve = commands.add_parser("serve", help="serve the API with the development server (production: gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    commands.add_parser("worker", help="run WORKER_CONCURRENCY RQ worker processes and the recovery sweeper")
    dev = commands.add_parser("dev", help="run everything in one process; in memory unless DATABASE_URL is set")
    dev.add_argument("--host", default="127.0.0.1")
    reencrypt = commands.add_parser(
        "reencrypt-tokens",
        help="encrypt every channel access token with the first key of TOKEN_ENCRYPTION_KEYS (safe to run twice)",
    )
    reencrypt.add_argument("--batch-size", type=int, default=500, help="channels per transaction (default 500)")
    commands.add_parser(
        "seed", help="fill DATABASE_URL's (migrated) database with demo tenants, channels, agents, credits and chats"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "migrate":
            return _migrate()
        if args.command == "serve":
            return _serve(Settings.from_env(), args.host)
        if args.command == "worker":
            return _worker(Settings.from_env())
        if args.command == "reencrypt-tokens":
            return _reencrypt_tokens(Settings.from_env(), max(1, args.batch_size))
        if args.command == "seed":
            return _seed(Settings.from_env(dev=True))
        return _dev(Settings.from_env(dev=True), args.host)
    except (ConfigError, SchemaNotCurrent) as error:
        print(f"mcagent: {error}", file=sys.stderr)
        return 2


def _migrate() -> int:
    from adapters.postgres.migrations import apply_migrations

    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        raise ConfigError(["DATABASE_URL: required (postgresql://…) to apply migrations"])
    applied = apply_migrations(url)
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "database is up to date")
    return 0


def _reencrypt_tokens(settings: Settings, batch_size: int) -> int:
    """Re-encrypt under the first key, then drop the cached routes (their tokens may be under an old key).

    Exit code 1 when some token no listed key decrypts: those channels are named, and left as they were.
    """
    from entrypoints.container import build_container
    from entrypoints.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    container = build_container(settings)
    container.init_resources()
    try:
        counts = container.channel_tokens().reencrypt_all(batch_size=batch_size)
        # Dropped from Redis and announced: every running process drops its own copies too.
        dropped = container.shared_route_cache().forget_all()
    finally:
        container.shutdown_resources()
    print(
        f"channel access tokens: {counts.reencrypted} re-encrypted from an older key, "
        f"{counts.encrypted} encrypted from plain text, {counts.current} already current, "
        f"{counts.changed_meanwhile} changed meanwhile, {len(counts.unreadable)} unreadable"
    )
    if dropped is None:
        print(f"route cache: Redis not reachable; cached routes expire within {settings.cache_ttl_s} s")
    else:
        print(f"route cache: {dropped} cached route(s) dropped")
    if counts.changed_meanwhile:
        print("some tokens changed while this ran: run the command again to check them")
    if counts.unreadable:
        print(
            "no key of TOKEN_ENCRYPTION_KEYS decrypts the token of channel(s) "
            + ", ".join(counts.unreadable)
            + ": put the key they were written under back in the list and run again, or set a new token",
            file=sys.stderr,
        )
        return 1
    return 0


def _serve(settings: Settings, host: str) -> int:
    from entrypoints.http.app import create_app
    from entrypoints.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    create_app().run(host=host, port=settings.port, threaded=True)
    return 0


def _worker(settings: Settings) -> int:
    from entrypoints.logging_setup import configure_logging
    from entrypoints.worker.main import run_workers

    configure_logging(settings.log_level, settings.log_format)
    run_workers(settings)
    return 0


def _dev(settings: Settings, host: str) -> int:
    from entrypoints.container import build_container
    from entrypoints.dev import register_dev, seed_demo_tenant, start_embedded_worker
    from entrypoints.http.app import create_app
    from entrypoints.io_counting import WEB, io_counts_for
    from entrypoints.logging_setup import configure_logging

    configure_logging(settings.log_level, "console")
    if not settings.embedded:
        _migrate()
        # Real Postgres/Redis/RQ: the workers run as in production, beside the dev server.
        multiprocessing.get_context("fork").Process(target=_worker, args=(settings,), daemon=True).start()
    container = build_container(settings, io_counts_for(settings, WEB))
    container.init_resources()
    app = create_app(container)
    demo = seed_demo_tenant(container, run="" if settings.embedded else f"-{os.getpid()}")
    register_dev(app, demo)
    stop = threading.Event()
    if settings.embedded:
        start_embedded_worker(container, stop)
    ai = container.ai().label
    base = f"http://{host}:{settings.port}"
    secret = settings.webhook_secret if settings.embedded else "$WEBHOOK_SECRET"  # never print a real secret
    print(
        f"""
mcagent dev — {"embedded (in memory)" if settings.embedded else "Postgres + Redis"}; AI: {ai}
  chat page:        {base}/dev
  admin API key:    {settings.admin_api_key}
  demo user:        {demo.user_id}   API key: {demo.api_key}
  demo channels:    {demo.phone_number_id} (WhatsApp, agent {demo.agent_id}), {demo.instagram_account_id} (Instagram),
                    {demo.widget_id} (web chat)
  widget tag:       <script src="{base}/widget.js" data-widget-id="{demo.widget_id}" async></script>
  webhook:          POST {base}{settings.webhook_path}   signing secret: {secret}
""",
        flush=True,
    )
    try:
        app.run(host=host, port=settings.port, threaded=True, use_reloader=False)
    finally:
        stop.set()
        container.shutdown_resources()
    return 0


def _seed(settings: Settings) -> int:
    """A demo in a real database; once only (exit code 1 on a seeded database, nothing changed)."""
    from adapters.postgres.migrations import verify_schema
    from entrypoints.container import build_container
    from entrypoints.seed import AlreadySeeded, banner, seed

    if settings.embedded or settings.database_url is None:
        raise ConfigError(["DATABASE_URL and REDIS_URL: required; `mcagent seed` fills a database"])
    verify_schema(settings.database_url)
    container = build_container(settings)
    container.init_resources()
    try:
        print(banner(seed(container)), flush=True)
    except AlreadySeeded as error:
        print(f"mcagent seed: {error}; nothing was changed", file=sys.stderr)
        return 1
    finally:
        container.shutdown_resources()
    return 0


if __name__ == "__main__":
    sys.exit(main())
