"""Every curl example of documentation/, run in page order against a real `mcagent dev`, must answer
what its page shows (tests/support/docs_examples.py says how a page states it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import ROOT, free_port, wait_for
from tests.support.docs_examples import (
    PageError,
    examples,
    json_answers,
    pages_in_order,
    problems,
    run,
    unlisted_pages,
    value_at,
)

DOCS = ROOT / "documentation"


@pytest.fixture
def dev() -> Iterator[dict[str, str]]:
    """`mcagent dev` in memory; the variables a reader starts with: its address, and the admin key and
    webhook signing secret it prints."""
    port = free_port()
    names = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    env = {**{name: os.environ[name] for name in names if name in os.environ}, "PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "dev"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                return requests.get(f"{base}/health", timeout=0.5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(up, timeout=30, what="mcagent dev")
        assert process.stdout is not None
        banner = ""
        while "webhook:" not in banner:
            banner += process.stdout.readline()
        admin = re.search(r"admin API key:\s+(\S+)", banner)
        secret = re.search(r"signing secret:\s+(\S+)", banner)
        assert admin is not None and secret is not None, banner
        yield {"BASE": base, "ADMIN_KEY": admin.group(1), "WEBHOOK_SECRET": secret.group(1)}
    finally:
        process.terminate()
        process.wait(10)


def test_every_page_is_in_the_readme_table() -> None:
    assert unlisted_pages(DOCS) == [], "list these pages in documentation/README.md's endpoint table"


def test_every_curl_example_answers_what_its_page_shows(dev: dict[str, str], tmp_path: Path) -> None:
    variables = dict(dev)
    failures: list[str] = []
    ran = 0
    for page in pages_in_order(DOCS):
        try:
            page_examples = examples(page, DOCS)
        except PageError as error:
            failures.append(str(error))
            continue
        for example in page_examples:
            outcome = run(example, variables, tmp_path)
            ran += 1
            found = problems(example, outcome)
            failures += found
            if not found and example.sets:
                answer = json_answers(outcome.output)[-1]
                variables.update({name: value_at(answer, path) for name, path in example.sets})
    assert not failures, f"{len(failures)} documentation example(s) differ from the service:\n" + "\n".join(failures)
    assert ran >= len(pages_in_order(DOCS)) - 1
