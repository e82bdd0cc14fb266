"""A long-lived process sets aside what it built at start, so the collector's full passes do not walk it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from pytest_mock import MockerFixture

from entrypoints.container import build_container
from entrypoints.heap import YOUNG_THRESHOLD, set_aside_startup_objects
from entrypoints.http.app import create_app
from entrypoints.settings import Settings
from entrypoints.worker import main as worker_main


class _Node:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_startup_objects_are_set_aside_and_garbage_is_collected_first() -> None:
    kept = [_Node()]
    dropped = weakref.ref(_Node())  # a cycle nothing refers to: garbage only the collector frees

    set_aside_startup_objects()

    assert dropped() is None  # collected, not set aside for good
    assert gc.get_freeze_count() > 0
    assert kept[0] not in gc.get_objects()  # the collector no longer walks it


def test_the_youngest_generation_is_collected_less_often_the_others_as_before() -> None:
    _, middle, oldest = gc.get_threshold()

    set_aside_startup_objects()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, oldest)


def test_a_worker_process_sets_its_objects_aside_once_its_container_is_built(mocker: MockerFixture) -> None:
    mocker.patch.object(worker_main, "build_container", return_value=build_container(Settings.from_env({}, dev=True)))
    bound = mocker.patch.object(worker_main.jobs, "bind")

    worker_main._start_container(Settings.from_env({}, dev=True), None)

    bound.assert_called_once()
    assert gc.get_freeze_count() > 0


def test_a_gunicorn_worker_sets_its_objects_aside_a_test_app_does_not(mocker: MockerFixture) -> None:
    settings = Settings.from_env({}, dev=True)
    create_app(build_container(settings))
    assert gc.get_freeze_count() == 0  # an app given its container is a test's or the dev server's

    mocker.patch("entrypoints.http.app.Settings.from_env", return_value=settings)
    mocker.patch("entrypoints.http.app.refuse_unless_current_schema")
    mocker.patch("entrypoints.http.app.configure_logging")
    create_app()

    assert gc.get_freeze_count() > 0
