"""Examples shown but not run (with a reason), guide pages without examples, and variables read from a
list's item: how the relink and hand-off pages state what their curl examples do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docs_examples import PageError, examples, value_at

PAGE = """# A guide

<!-- docs-test: not run: the channel has an agent already; step 4 moves it -->
```sh
curl -s -X POST "$BASE/widgets"
```

<!-- docs-test: expect 200; sets FIRST_ID from .items.0.id -->
```sh
curl -s "$BASE/widgets"
```
"""


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "guide.md"
    page.write_text(text, encoding="utf-8")
    return page


def test_an_example_marked_not_run_is_shown_and_skipped(tmp_path: Path) -> None:
    (only,) = examples(_page(tmp_path, PAGE), tmp_path)
    assert only.expect == (200,)
    assert only.sets == (("FIRST_ID", ".items.0.id"),)


def test_not_run_needs_a_reason(tmp_path: Path) -> None:
    page = _page(tmp_path, PAGE.replace("not run: the channel has an agent already; step 4 moves it", "not run"))
    with pytest.raises(PageError, match="`not run` without a reason"):
        examples(page, tmp_path)


def test_a_guide_without_curl_examples_has_none(tmp_path: Path) -> None:
    assert examples(_page(tmp_path, '# Guide\n\n```json\n{"bot": "paused"}\n```\n'), tmp_path) == []


def test_a_number_in_a_variable_path_indexes_a_list() -> None:
    assert value_at({"items": [{"id": 42}, {"id": 7}]}, ".items.0.id") == "42"
    assert value_at({"items": [{"id": 42}, {"id": 7}]}, ".items.1.id") == "7"
