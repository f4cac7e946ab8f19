"""Run the Python examples of the documentation against a real local SkyPilot server.

Every fenced ```` ```python ```` block of ``docs/*.md`` and ``README.md`` is a test, with the id
``<file>:<line>`` (the line of the opening fence). The blocks of one file run in order in one
shared namespace, which holds ``SERVER_URL`` (the base URL of the ``skypilot_server``
fixture). A block whose first line is ``# not run: <reason>`` is only compiled, then skipped.

A Markdown file whose examples need another environment (no SkyPilot server) is left to its
own runner: it is listed in ``RUN_ELSEWHERE`` or contains ``<!-- test_docs: skip <reason> -->``.
Its blocks are still compiled here.

Running a single block (``-k 'skypilot-client.md:120'``) first runs the blocks before it in the
same file, as set-up. Once a block of a file fails, the later blocks of that file are skipped:
the first failure is the one to read. Tracebacks point at lines of the Markdown file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
NOT_RUN_PREFIX = "# not run:"

# Settings the client reads from the environment: cleared so the examples see only what they
# set themselves (a developer's own token or server URL must not leak into the run).
CLIENT_ENV_VARS = (
    "SKYPILOT_API_SERVER_URL",
    "SKYPILOT_API_SERVER_ENDPOINT",
    "SKYPILOT_SERVICE_ACCOUNT_TOKEN",
    "SKYPILOT_REQUEST_TIMEOUT",
    "SKYPILOT_MAX_RETRIES",
    "SKYPILOT_RETRY_DELAY",
    "SKYPILOT_LAUNCH_TIMEOUT",
    "SKYPILOT_TERMINATE_TIMEOUT",
    "SKYPILOT_STATUS_TIMEOUT",
)

# Files whose examples another test module runs (repository-relative path -> reason).
RUN_ELSEWHERE = {
    "docs/providers.md": "runs against recorded vendor responses in "
    "tests/providers/test_docs_providers.py, not against a SkyPilot server",
    "docs/service.md": "runs in tests/ledger/test_docs_service.py: SQLite in a temp dir and a "
    "throwaway PostgreSQL server, no SkyPilot server",
}
_SKIP_MARKER = re.compile(r"<!--\s*test_docs:\s*skip\b:?\s*(?P<reason>.*?)\s*-->")

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")


@dataclass(frozen=True)
class DocBlock:
    """One ```python block of a Markdown file."""

    path: Path
    fence_line: int  # 1-based line of the opening fence
    source: str
    index: int  # position among the file's python blocks

    @property
    def display_path(self) -> str:
        try:
            return self.path.relative_to(REPO_ROOT).as_posix()
        except ValueError:
            return self.path.as_posix()

    @property
    def id(self) -> str:
        return f"{self.display_path}:{self.fence_line}"

    @property
    def file_skip_reason(self) -> str | None:
        """Why this file's examples are not run here (another runner owns them)."""
        if self.display_path in RUN_ELSEWHERE:
            return RUN_ELSEWHERE[self.display_path]
        match = _SKIP_MARKER.search(self.path.read_text(encoding="utf-8"))
        if match is not None:
            return match["reason"] or "marked '<!-- test_docs: skip -->'"
        return None

    @property
    def skip_reason(self) -> str | None:
        first = self.source.lstrip("\n").split("\n", 1)[0].strip()
        if first.lower().startswith(NOT_RUN_PREFIX):
            return first[len(NOT_RUN_PREFIX) :].strip() or "marked '# not run'"
        return None

    def compile(self) -> Any:
        # Pad with newlines so that line numbers in tracebacks are lines of the Markdown file.
        padded = "\n" * self.fence_line + self.source
        return compile(padded, str(self.path), "exec", dont_inherit=True)


def extract_python_blocks(path: Path) -> list[DocBlock]:
    """The ```python (or ```py) fenced blocks of a Markdown file, in order."""
    blocks: list[DocBlock] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        is_python = match["info"].lower() in ("python", "py", "python3")
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            line = lines[j]
            # Content of an indented fence is de-indented by the fence's own indent.
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            j += 1
        if is_python:
            blocks.append(DocBlock(path, i + 1, "\n".join(body) + "\n", len(blocks)))
        i = j + 1
    return blocks


def doc_files() -> list[Path]:
    """``docs/*.md`` (sorted) and ``README.md`` when it exists."""
    files = sorted((REPO_ROOT / "docs").glob("*.md"))
    readme = REPO_ROOT / "README.md"
    if readme.is_file():
        files.append(readme)
    return files


ALL_BLOCKS = [block for path in doc_files() for block in extract_python_blocks(path)]


@dataclass
class _FileRun:
    """Execution state of one Markdown file: its namespace and how far it got."""

    blocks: list[DocBlock]
    namespace: dict[str, Any]
    done: int = 0  # blocks[:done] have been executed (or skipped)
    failed: str | None = None  # id of the block that failed
    results: dict[int, str | None] = field(default_factory=dict)


@pytest.fixture(scope="module")
def doc_environment(
    skypilot_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Start the server first, then isolate the examples from the developer's settings.

    The server fixture is requested before ``HOME`` changes: finding the server venv may
    depend on ``HOME``. A fresh ``HOME`` hides ``~/.sky/config.yaml`` from the examples.
    """
    base_url = str(skypilot_server.base_url)
    client_logger = logging.getLogger("skypilot_client")
    root = logging.getLogger()
    saved_levels = (client_logger.level, root.level)
    saved_handlers = (list(client_logger.handlers), list(root.handlers))
    with pytest.MonkeyPatch.context() as patch:
        for name in CLIENT_ENV_VARS:
            patch.delenv(name, raising=False)
        patch.setenv("HOME", str(tmp_path_factory.mktemp("docs-home")))
        try:
            yield base_url
        finally:
            client_logger.setLevel(saved_levels[0])
            root.setLevel(saved_levels[1])
            client_logger.handlers[:] = saved_handlers[0]
            root.handlers[:] = saved_handlers[1]


@pytest.fixture(scope="module")
def doc_runs(doc_environment: str) -> dict[Path, _FileRun]:
    runs: dict[Path, _FileRun] = {}
    for block in ALL_BLOCKS:
        run = runs.get(block.path)
        if run is None:
            namespace: dict[str, Any] = {"__name__": "__doc_example__", "SERVER_URL": ""}
            run = runs[block.path] = _FileRun([], namespace)
        run.blocks.append(block)
    for run in runs.values():
        run.namespace["SERVER_URL"] = doc_environment
    return runs


def _execute(block: DocBlock, run: _FileRun) -> None:
    code = block.compile()
    if block.skip_reason is None:
        exec(code, run.namespace)  # noqa: S102 (the documentation's own examples)


@pytest.mark.integration
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.id for block in ALL_BLOCKS])
def test_doc_example(block: DocBlock, doc_runs: dict[Path, _FileRun]) -> None:
    if (reason := block.file_skip_reason) is not None:
        pytest.skip(f"{block.display_path} is tested elsewhere: {reason}")
    run = doc_runs[block.path]
    if block.index < run.done:
        # Already executed as set-up of a later block (tests ran out of order).
        outcome = run.results.get(block.index)
        if outcome is not None:
            pytest.fail(f"{block.id} failed when run as set-up: {outcome}", pytrace=False)
        return
    if run.failed is not None:
        pytest.skip(f"an earlier example of this file failed: {run.failed}")
    while run.done < block.index:  # blocks before this one that were not run (test selection)
        earlier = run.blocks[run.done]
        try:
            _execute(earlier, run)
        except Exception as exc:
            run.failed = earlier.id
            run.results[earlier.index] = f"{type(exc).__name__}: {exc}"
            run.done = len(run.blocks)
            pytest.fail(
                f"set-up example {earlier.id} failed: {type(exc).__name__}: {exc}", pytrace=False
            )
        run.results[earlier.index] = None
        run.done += 1
    run.done = block.index + 1
    try:
        _execute(block, run)
    except Exception as exc:
        run.failed = block.id
        run.results[block.index] = f"{type(exc).__name__}: {exc}"
        raise
    run.results[block.index] = None
    if block.skip_reason is not None:
        pytest.skip(f"not run ({block.skip_reason}); compiled only")


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[block.id for block in ALL_BLOCKS])
def test_doc_example_compiles(block: DocBlock) -> None:
    """Every example is valid Python (no server needed)."""
    block.compile()


def test_extract_python_blocks(tmp_path: Path) -> None:
    """The extractor finds python blocks, their fence lines and the '# not run' marker."""
    doc = tmp_path / "sample.md"
    doc.write_text(
        "# Title\n"
        "```python\n"
        "x = 1\n"
        "```\n"
        "```bash\n"
        "echo no\n"
        "```\n"
        "````python\n"
        "# not run: needs a cloud\n"
        "```\n"
        "y = 2\n"
        "````\n"
        "  ```py\n"
        "  z = 3\n"
        "  ```\n",
        encoding="utf-8",
    )
    blocks = extract_python_blocks(doc)
    assert [(b.fence_line, b.source) for b in blocks] == [
        (2, "x = 1\n"),
        (8, "# not run: needs a cloud\n```\ny = 2\n"),
        (13, "z = 3\n"),
    ]
    assert [b.skip_reason for b in blocks] == [None, "needs a cloud", None]
    namespace: dict[str, Any] = {}
    exec(blocks[2].compile(), namespace)  # noqa: S102
    assert namespace["z"] == 3
    with pytest.raises(ZeroDivisionError) as info:
        exec(DocBlock(doc, 2, "1 / 0\n", 0).compile(), {})  # noqa: S102
    assert info.traceback[-1].lineno + 1 == 3  # the line after the fence, 1-based
    assert os.fspath(info.traceback[-1].path) == str(doc)


def test_file_skip_marker(tmp_path: Path) -> None:
    """A file can hand its examples to another runner with an HTML comment."""
    marked = tmp_path / "marked.md"
    marked.write_text(
        "<!-- test_docs: skip needs a vendor sandbox -->\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    plain = tmp_path / "plain.md"
    plain.write_text("```python\nx = 1\n```\n", encoding="utf-8")
    assert extract_python_blocks(marked)[0].file_skip_reason == "needs a vendor sandbox"
    assert extract_python_blocks(plain)[0].file_skip_reason is None
