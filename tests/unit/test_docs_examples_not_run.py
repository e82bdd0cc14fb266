"""Documentation examples that are illustrations only (`not run: why`), and variables read off a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docs_examples import PageError, examples, value_at

PAGE = """# Retry a widget

<!-- docs-test: not run: needs a widget that failed, which a fresh service has none of -->
```sh
curl -s -X POST "$BASE/widgets/7/retry"
```

<!-- docs-test: expect 200; sets WIDGET_ID from .widgets.0.id -->
```sh
curl -s "$BASE/widgets"
```
"""


def test_an_example_marked_not_run_is_skipped_and_the_others_run(tmp_path: Path) -> None:
    (tmp_path / "retry.md").write_text(PAGE, encoding="utf-8")
    (only,) = examples(tmp_path / "retry.md", tmp_path)
    assert only.line == 9
    assert only.sets == (("WIDGET_ID", ".widgets.0.id"),)


def test_not_run_must_say_why(tmp_path: Path) -> None:
    (tmp_path / "retry.md").write_text(
        PAGE.replace("not run: needs a widget that failed, which a fresh service has none of", "not run:"),
        encoding="utf-8",
    )
    with pytest.raises(PageError, match=r"retry\.md:4: the docs-test comment says no `expect STATUS`"):
        examples(tmp_path / "retry.md", tmp_path)


def test_a_variable_is_read_from_a_list_item_by_its_index() -> None:
    assert value_at({"widgets": [{"id": 7}, {"id": 3}]}, ".widgets.1.id") == "3"
    assert value_at({"widget": {"id": "w_1"}}, ".widget.id") == "w_1"
