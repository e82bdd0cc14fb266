"""How documentation pages state what their curl examples answer, read by tests/support/docs_examples.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docs_examples import PageError, examples, key_differences, pages_in_order, unlisted_pages

PAGE = """# Create a widget

## Response

`201 Created`

```json
{"widget": {"id": "w_1", "tags": [{"name": "a"}]}, "api_key": "k"}
```

## Example

<!-- docs-test: expect 201 like the response above; sets WIDGET_ID from .widget.id, KEY from .api_key -->
```sh
curl -s -X POST "$BASE/widgets" -H "x-api-key: $ADMIN_KEY"
```

<!-- docs-test: expect 200, 404; prints "hello" -->
```sh
curl -s "$BASE/widgets/$WIDGET_ID"
```
"""


def _docs(tmp_path: Path, page: str = PAGE) -> Path:
    (tmp_path / "widgets").mkdir()
    (tmp_path / "widgets" / "create_widget.md").write_text(page, encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "| Endpoint | Page |\n| --- | --- |\n"
        "| `POST /widgets` | [widgets/create_widget.md](widgets/create_widget.md) |\n",
        encoding="utf-8",
    )
    return tmp_path


def test_each_example_carries_its_expectations(tmp_path: Path) -> None:
    root = _docs(tmp_path)
    first, second = examples(root / "widgets" / "create_widget.md", root)
    assert first.expect == (201,)
    assert first.shape == {"widget": {"id": "w_1", "tags": [{"name": "a"}]}, "api_key": "k"}
    assert first.sets == (("WIDGET_ID", ".widget.id"), ("KEY", ".api_key"))
    assert (second.expect, second.prints, second.shape) == ((200, 404), "hello", None)
    assert second.where == "widgets/create_widget.md:19"


def test_a_curl_example_without_a_docs_test_comment_is_refused(tmp_path: Path) -> None:
    root = _docs(tmp_path, PAGE.replace('<!-- docs-test: expect 200, 404; prints "hello" -->\n', ""))
    with pytest.raises(PageError, match=r"create_widget\.md:18: a curl example without"):
        examples(root / "widgets" / "create_widget.md", root)


def test_pages_run_in_the_readme_order_and_unlisted_pages_are_named(tmp_path: Path) -> None:
    root = _docs(tmp_path)
    (root / "widgets" / "delete_widget.md").write_text("# Delete\n", encoding="utf-8")
    assert pages_in_order(root) == [root / "widgets" / "create_widget.md", root / "README.md"]
    assert unlisted_pages(root) == ["widgets/delete_widget.md"]


def test_keys_are_compared_at_every_level_both_show() -> None:
    shown = {"widget": {"id": "w", "tags": [{"name": "a"}]}, "api_key": "k"}
    assert key_differences(shown, {"widget": {"id": "x", "tags": []}, "api_key": "z"}) == []
    assert key_differences(shown, {"widget": {"id": "x", "tags": [{"label": "a"}]}, "api_key": "z", "new": 1}) == [
        "keys of the body: shown, not answered []; answered, not shown ['new']",
        "keys of .widget.tags[0]: shown, not answered ['name']; answered, not shown ['label']",
    ]
