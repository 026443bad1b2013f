"""Every ```python block of README.md and docs/*.md runs as written.

Each block runs in a fresh namespace, in an empty temporary working directory that
holds a copy of the checkout's ``datasets/`` configs (no generated ``.h5`` files), as
a reader who copies it into a shell at the root of the checkout would run it. A block
may be left out only by an HTML comment on the line before its fence,
``<!-- skip-test: why -->``, and the reason must be given.

Also checked: a documented ``run.toml`` passes the config loader, relative links
between the pages point at files that exist, the
README's install and check commands are the ones ``.ci/run`` runs, and CITATION.cff
carries the package's version.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"^<!--\s*skip-test:\s*(.*?)\s*-->$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: a block that takes longer than this should be made cheaper (or marked skip-test)
BLOCK_SECONDS = 60.0


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    skip: str | None  # reason given by a skip-test comment, None if the block runs

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with their skip-test reasons."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start = i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        skip = SKIP.match(before)
        found.append(Block(page, start + 1, match.group(1), "\n".join(lines[start:end]),
                           skip.group(1) if skip else None))
        i = end + 1
    return found


PYTHON = [b for page in PAGES for b in blocks(page) if b.language == "python"]
RUN_TOML = [b for page in PAGES for b in blocks(page)
            if b.language == "toml" and b.code.startswith("# run.toml")]


def test_the_pages_have_python_blocks() -> None:
    assert (ROOT / "docs" / "index.md").exists()
    assert len(PYTHON) >= 4, [b.name for b in PYTHON]
    readme = [b for b in PYTHON if b.page.name == "README.md"]
    assert len(readme) == 1 and readme[0].skip is None
    assert RUN_TOML, "docs/training.md documents run.toml"


def test_skipped_blocks_say_why() -> None:
    for b in PYTHON:
        if b.skip is not None:
            assert len(b.skip) >= 10, f"{b.name}: give the reason in <!-- skip-test: ... -->"


@pytest.fixture
def checkout_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with the dataset configs of the checkout."""
    shutil.copytree(ROOT / "datasets", tmp_path / "datasets",
                    ignore=shutil.ignore_patterns("*.h5", "*.partial"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_python_block_runs(block: Block, checkout_like: Path) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    # pad so that a traceback names the Markdown file and its line
    code = compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")
    start = time.perf_counter()
    try:
        exec(code, {"__name__": "__docs__"})
    finally:
        import sys

        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")
    seconds = time.perf_counter() - start
    assert seconds < BLOCK_SECONDS, (
        f"{block.name} took {seconds:.0f} s; make it cheaper or mark it skip-test")


@pytest.mark.parametrize("block", RUN_TOML, ids=[b.name for b in RUN_TOML])
def test_documented_run_toml_loads(block: Block, tmp_path: Path) -> None:
    """A documented training config passes the key-by-key check of the loader."""
    from scimeta.train.config import load_train_config

    path = tmp_path / "run.toml"
    path.write_text(block.code + "\n", encoding="utf-8")
    cfg = load_train_config(str(path))
    assert cfg.meta.algorithm == "maml"


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_citation_names_the_package_version() -> None:
    """CITATION.cff (CFF 1.2.0) carries the version pyproject.toml gives the package."""
    import tomllib

    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(r"^cff-version: 1\.2\.0$", cff, re.M)
    assert re.search(rf'^version: "{re.escape(version)}"$', cff, re.M), version
    for key in ("message", "title", "authors", "license", "type"):
        assert re.search(rf"^{key}:", cff, re.M), key


def test_readme_commands_are_the_ci_commands() -> None:
    """.ci/run installs and checks the project as the README says."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    install = [ln for ln in ci if "pip install" in ln and ".[dev]" in ln]
    assert len(install) == 1, install
    assert install[0].replace(" -q", "").strip() in readme
    for command in ("python -m pytest", "ruff check .", "mypy"):
        assert command in ci and command in readme, command
