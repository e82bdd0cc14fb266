"""The curl examples of `documentation/`, run as a reader would run them, and compared with the page.

Each ```sh block holding `curl` is an example. The HTML comment just above it says what it must do:

    <!-- docs-test: expect 201 like the response above; sets USER_ID from .user.user_id, API_KEY from .api_key -->

- `expect 201` (or `expect 200, 404`): the status every curl call of the block must answer;
- `like the response above`: each JSON answer has the keys of the nearest ```json block above the
  example, at every level (a list's first item against the page's first item);
- `prints "text"`: the block's output holds that text;
- `sets NAME from .a.b`: later examples can use `$NAME`, read from the last JSON answer (`.items.0.id`:
  a number indexes a list);
- `not run: <reason>`: the example is shown, not run (it needs what `mcagent dev` cannot give, or it
  would undo what later pages use); the reason is required, and is the only thing the comment says.

A page with no curl example (a guide) needs no comment; a guide is listed in the table too, so that its
examples run, after the endpoints' pages they build on.

Examples use `$BASE`, `$ADMIN_KEY` and the variables earlier pages set; pages run in the order of
the endpoint table of documentation/README.md, then the README itself. curl is the reader's own: a
`.curlrc` in a private `CURL_HOME` adds only `-w` to write each status to stderr.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from attrs import frozen

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_DIRECTIVE = re.compile(r"<!--\s*docs-test:((?:(?!-->).)*)-->\s*\Z", re.S)
_TABLE_LINK = re.compile(r"^\|[^|]*\|\s*\[[^\]]+\]\(([^)]+\.md)\)\s*\|\s*$", re.M)
_STATUS_LINE = re.compile(r"^__STATUS__(\d{3})$", re.M)
_NOT_RUN = re.compile(r"\s*not run:\s*\S")


@frozen
class Example:
    page: str
    line: int
    script: str
    expect: tuple[int, ...]
    shape: Any | None  # the page's JSON the answers must have the keys of
    prints: str | None
    sets: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


class PageError(AssertionError):
    """A page whose examples cannot be run as written (no docs-test comment, an unreadable one)."""


def pages_in_order(root: Path) -> list[Path]:
    """The pages of the README's endpoint table, in its order, then the README itself."""
    readme = root / "README.md"
    listed = [root / link for link in _TABLE_LINK.findall(readme.read_text(encoding="utf-8"))]
    ordered = list(dict.fromkeys(listed))
    return [*ordered, readme]


def unlisted_pages(root: Path) -> list[str]:
    listed = set(pages_in_order(root))
    return sorted(str(page.relative_to(root)) for page in root.rglob("*.md") if page not in listed)


def examples(page: Path, root: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    name = str(page.relative_to(root))
    found: list[Example] = []
    last_json: Any | None = None
    for block in _BLOCK.finditer(text):
        language, body = block.group(1), block.group(2)
        line = text.count("\n", 0, block.start()) + 1
        if language == "json":
            try:
                last_json = json.loads(body)
            except ValueError:
                last_json = None  # an excerpt, not a whole answer
            continue
        if language != "sh" or not re.search(r"^\s*curl\b", body, re.M):
            continue
        directive = _DIRECTIVE.search(text[: block.start()].rstrip() + "\n")
        if directive is None:
            raise PageError(f"{name}:{line}: a curl example without a <!-- docs-test: … --> comment above it")
        if directive.group(1).strip().startswith("not run"):
            if not _NOT_RUN.match(directive.group(1)):
                raise PageError(f"{name}:{line}: `not run` without a reason (`not run: why`)")
            continue
        found.append(_example(name, line, body, directive.group(1), last_json))
    return found


def _example(page: str, line: int, script: str, directive: str, last_json: Any | None) -> Example:
    expect = re.search(r"expect\s+(\d{3}(?:\s*,\s*\d{3})*)", directive)
    if expect is None:
        raise PageError(f"{page}:{line}: the docs-test comment says no `expect STATUS`")
    shape = None
    if "like the response above" in directive:
        if last_json is None:
            raise PageError(f"{page}:{line}: `like the response above`, but no JSON response is shown above")
        shape = last_json
    prints = re.search(r'prints\s+"([^"]+)"', directive)
    sets = tuple(re.findall(r"([A-Z_]+)\s+from\s+(\.[\w.]+)", directive))
    return Example(
        page=page,
        line=line,
        script=script,
        expect=tuple(int(status) for status in expect.group(1).split(",")),
        shape=shape,
        prints=prints.group(1) if prints else None,
        sets=sets,
    )


@frozen
class Outcome:
    statuses: tuple[int, ...]
    output: str
    errors: str
    exit_code: int


def run(example: Example, variables: dict[str, str], curl_home: Path) -> Outcome:
    """The example's block in `sh`, with the variables set and each curl status written to stderr."""
    (curl_home / ".curlrc").write_text('-w "%{stderr}__STATUS__%{http_code}\\n"\n', encoding="utf-8")
    done = subprocess.run(
        ["sh", "-c", example.script],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "CURL_HOME": str(curl_home), **variables},
        capture_output=True,
        text=True,
        timeout=30,
    )
    statuses = tuple(int(status) for status in _STATUS_LINE.findall(done.stderr))
    return Outcome(statuses, done.stdout, _STATUS_LINE.sub("", done.stderr).strip(), done.returncode)


def problems(example: Example, outcome: Outcome) -> list[str]:
    where = example.where
    found: list[str] = []
    if outcome.exit_code != 0:
        found.append(f"{where}: the example exited {outcome.exit_code}: {outcome.errors or outcome.output[:300]}")
    if not outcome.statuses:
        return [*found, f"{where}: no curl call was made"]
    wrong = [status for status in outcome.statuses if status not in example.expect]
    if wrong:
        found.append(f"{where}: answered {wrong}, the page expects {list(example.expect)}: {outcome.output[:300]}")
    if example.prints is not None and example.prints not in outcome.output:
        found.append(f"{where}: the output does not show {example.prints!r}: {outcome.output[:300]}")
    if example.shape is not None:
        for answer in json_answers(outcome.output):
            found += [f"{where}: {difference}" for difference in key_differences(example.shape, answer)]
    return found


def json_answers(output: str) -> list[Any]:
    """Every JSON document the block printed, one after the other."""
    decoder, answers, at = json.JSONDecoder(), [], 0
    while at < len(output):
        while at < len(output) and output[at].isspace():
            at += 1
        if at >= len(output):
            break
        value, at = decoder.raw_decode(output, at)
        answers.append(value)
    return answers


def key_differences(shown: Any, answered: Any, path: str = "") -> list[str]:
    """Where the answer's keys differ from the page's, at every level both have."""
    if isinstance(shown, dict) and isinstance(answered, dict):
        found = []
        if set(shown) != set(answered):
            only_page = sorted(set(shown) - set(answered))
            only_answer = sorted(set(answered) - set(shown))
            where = path or "the body"
            found.append(f"keys of {where}: shown, not answered {only_page}; answered, not shown {only_answer}")
        for key in set(shown) & set(answered):
            found += key_differences(shown[key], answered[key], f"{path}.{key}")
        return found
    if isinstance(shown, list) and isinstance(answered, list) and shown and answered:
        return key_differences(shown[0], answered[0], f"{path}[0]")
    return []


def value_at(answer: Any, path: str) -> str:
    for part in path.strip(".").split("."):
        answer = answer[int(part)] if isinstance(answer, list) else answer[part]
    return str(answer)
