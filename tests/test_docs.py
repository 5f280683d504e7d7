"""Every code block in docs/ is run, compared with the output it shows, or says why it is not.

The rules (docs/contributing.md explains them for writers):

- ```python blocks run; the blocks of a page share one namespace, in page order.
- ```bash blocks run with bash (-e, -o pipefail) in the page's scratch directory.
- a ```text block right after ``<!-- output -->`` must equal the standard output of the block before
  it, line by line, with runs of blanks counted as one space and ``...`` matching anything in a line.
- a block after ``<!-- run-by: PATH -->`` must consist of lines of PATH, a script CI runs.
- a block after ``<!-- not-run: REASON -->`` is not run; the reasons are reported as a warning.
- nothing that runs may install packages (``pip install``).

The examples name the real models; they run on the tiny random model, placed in a private Hugging Face
cache under those names with HF_HUB_OFFLINE=1. One process runs every page and holds a vLLM engine for
``Qwen/Qwen3-Reranker-0.6B`` with default options throughout, so examples share it instead of starting
one each. This file is also that process's script (see the ``__main__`` block at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from paths import REPO

DOCS = REPO / "docs"
KEEPER_MODEL = "Qwen/Qwen3-Reranker-0.6B"
HUB_NAMES = ("Qwen/Qwen3-Reranker-0.6B", "Qwen/Qwen3-Reranker-4B", "Qwen/Qwen3-Reranker-8B")
RUNNABLE = ("python", "bash")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^`]*$")
_MARKER = re.compile(r"^<!--\s*(?P<kind>output|not-run|run-by)\s*(?::\s*(?P<arg>.*?))?\s*-->$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    marker: str | None
    arg: str | None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(DOCS).as_posix()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        above = i - 1
        while above >= 0 and not lines[above].strip():
            above -= 1
        marker = _MARKER.match(lines[above].strip()) if above >= 0 else None
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][indent:] if not lines[j][:indent].strip() else lines[j])
            j += 1
        blocks.append(
            Block(
                page,
                i + 1,
                opening["lang"].lower(),
                "\n".join(body) + "\n",
                marker["kind"] if marker else None,
                (marker["arg"] or "").strip() if marker else None,
            )
        )
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in sorted(DOCS.rglob("*.md")) for block in parse_blocks(path)]


_INSTALLS = re.compile(r"\b(pip3?|uv pip|conda|mamba|apt(-get)?)\s+install\b")


def problems(blocks: list[Block]) -> list[str]:
    """What breaks the rules, one line per block."""
    found = []
    previous: Block | None = None
    for block in blocks:
        if previous is not None and previous.page != block.page:
            previous = None
        if block.marker == "not-run" and not block.arg:
            found.append(f"{block.where}: <!-- not-run: ... --> needs a reason")
        elif block.marker == "run-by":
            script = REPO / (block.arg or "")
            if not block.arg or not script.is_file():
                found.append(f"{block.where}: <!-- run-by: {block.arg} --> names no file of the repository")
            else:
                script_lines = {line.strip() for line in script.read_text(encoding="utf-8").splitlines()}
                missing = [ln for ln in block.code.splitlines() if ln.strip() and ln.strip() not in script_lines]
                if missing:
                    found.append(f"{block.where}: not in {block.arg}: {missing}")
        elif block.marker == "output":
            if block.lang != "text":
                found.append(f"{block.where}: an <!-- output --> block must be ```text")
            elif previous is None or previous.lang not in RUNNABLE or previous.marker is not None:
                found.append(f"{block.where}: an <!-- output --> block must follow a block that runs")
        elif block.marker is None and block.lang in RUNNABLE and _INSTALLS.search(block.code):
            found.append(
                f"{block.where}: a test must not install packages; mark this block <!-- not-run: WHY --> or "
                "<!-- run-by: scripts/setup.sh -->"
            )
        elif block.marker is None and block.lang not in RUNNABLE:
            found.append(
                f"{block.where}: a ```{block.lang or '(no language)'} block is neither run nor explained; make it "
                "```python or ```bash, or mark it <!-- output -->, <!-- run-by: SCRIPT --> or <!-- not-run: WHY -->"
            )
        previous = block
    return found


def page_steps(blocks: list[Block]) -> dict[str, list[dict]]:
    """Per page, the blocks to run, each with the output it must print (if the page shows one).

    A page with a block that breaks the rules is not run at all (it could, say, install packages into
    the environment running the tests); test_every_code_block_is_run_or_says_why names the block.
    """
    broken = {line.split(":", 1)[0].removeprefix("docs/") for line in problems(blocks)}
    pages: dict[str, list[dict]] = {}
    for block in blocks:
        if block.page in broken:
            pages[block.page] = []
            continue
        if block.marker is None and block.lang in RUNNABLE:
            pages.setdefault(block.page, []).append({**asdict(block), "expect": None})
        elif block.marker == "output" and pages.get(block.page):
            pages[block.page][-1]["expect"] = block.code
    return pages


BLOCKS = all_blocks()
PAGES = page_steps(BLOCKS)


# -- the static rules ------------------------------------------------------------------------------


def test_every_code_block_is_run_or_says_why():
    assert BLOCKS, "no code blocks found in docs/"
    assert problems(BLOCKS) == []
    skipped = [f"{b.where}: {b.arg}" for b in BLOCKS if b.marker == "not-run"]
    if skipped:
        warnings.warn(
            f"{len(skipped)} documentation blocks are not run:\n" + "\n".join(skipped), UserWarning, stacklevel=1
        )


def test_the_rules_catch_what_they_should(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "```yaml\na: 1\n```\n\n<!-- not-run: -->\n```python\nx\n```\n\n<!-- output -->\n```text\nx\n```\n\n"
        "<!-- run-by: scripts/test.sh -->\n```bash\nrm -rf /\n```\n\n```python\nprint(1)\n```\n\n"
        "<!-- output -->\n```text\n1\n```\n\n```bash\npip install requests\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    found = problems(parse_blocks(page))
    assert [line.split(": ", 1)[1][:40] for line in found] == [
        "a ```yaml block is neither run nor expla",
        "<!-- not-run: ... --> needs a reason",
        "an <!-- output --> block must follow a b",
        "not in scripts/test.sh: ['rm -rf /']",
        "a test must not install packages; mark t",
    ]


def output_matches(expected: str, actual: str) -> bool:
    def lines(text: str) -> list[str]:
        out = [" ".join(line.split()) for line in text.splitlines()]
        while out and not out[-1]:
            out.pop()
        return out

    want, got = lines(expected), lines(actual)
    if len(want) != len(got):
        return False
    return all(
        re.fullmatch(".*".join(re.escape(part) for part in w.split("...")), g) is not None
        for w, g in zip(want, got, strict=True)
    )


def test_output_matching():
    assert output_matches("a  b\n...\n", "a\tb\nanything at all\n\n")
    assert output_matches("NDCG@10 0.3791 ...", "NDCG@10     0.3791     0.5224   +0.1433")
    assert not output_matches("NDCG@10 0.3791 ...", "NDCG@10 0.3792 0.5")
    assert not output_matches("one\n", "one\ntwo\n")


def test_the_cli_reference_describes_every_option():
    from qwen3_rerank.cli import _parser

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    model_section = sections["Model options (every scoring command)"]
    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, parser in subparsers.choices.items():
        section = sections.get(f"`qwen3-rerank {name}`")
        if section is None:
            missing.append(f"no section for {name}")
            continue
        known = set()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            names = action.option_strings or [action.dest]
            known.update(names)
            home = model_section if action.container.title == "model" else section
            missing += [f"{name}: {n}" for n in names if f"`{n}`" not in home]
        stale = set(re.findall(r"`(--[\w-]+)", section)) - known
        missing += [f"{name}: documents {option}, which it does not have" for option in sorted(stale)]
    assert missing == []


# -- running the examples ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_results(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("docs-examples")
    hub = root / "hub"
    for name in HUB_NAMES:
        repo = hub / f"models--{name.replace('/', '--')}"
        snapshot = repo / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        for file in tiny_model_dir.iterdir():
            (snapshot / file.name).symlink_to(file)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("0" * 40)
    spec, result, log = root / "spec.json", root / "results.json", root / "runner.log"
    runnable = {page: steps for page, steps in PAGES.items() if steps}
    spec.write_text(json.dumps({"pages": runnable, "work": str(root / "pages"), "keeper": KEEPER_MODEL}))
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(hub),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
        "VLLM_NO_USAGE_STATS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    with log.open("w") as handle:
        proc = subprocess.run(
            [sys.executable, __file__, str(spec), str(result)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=3600,
            cwd=root,
        )
    results = json.loads(result.read_text()) if result.exists() else {}
    return results, proc.returncode, log.read_text(errors="replace")[-6000:]


@pytest.mark.parametrize("page", sorted(page for page, steps in PAGES.items() if steps))
def test_page_examples_run(page, docs_results):
    results, code, log = docs_results
    if page not in results:
        pytest.fail(f"the examples runner stopped (exit {code}) before docs/{page}; its log ends:\n{log}")
    outcome = results[page]
    assert outcome["ok"], f"{outcome['where']}: {outcome['error']}"


def test_pages_that_break_the_rules_are_not_run():
    broken = sorted(page for page, steps in PAGES.items() if not steps)
    assert broken == [], f"not run until test_every_code_block_is_run_or_says_why passes: {broken}"


# -- the runner process ----------------------------------------------------------------------------------


def _run_pages(spec_path: str, result_path: str) -> None:
    import contextlib
    import io
    import traceback

    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work"])
    keeper = None
    try:
        from qwen3_rerank import Reranker

        keeper = Reranker(spec["keeper"])  # held open, so the examples share its engine
    except ImportError:
        pass  # no vLLM: examples that need it fail on their own, with their own message
    results: dict[str, dict] = {}
    try:
        for page, steps in spec["pages"].items():
            directory = work / page.replace("/", "__").removesuffix(".md")
            directory.mkdir(parents=True)
            for name in ("tests", "examples"):
                (directory / name).symlink_to(REPO / name)
            os.chdir(directory)
            namespace: dict = {"__name__": "__docs__"}
            outcome = {"ok": True}
            for step in steps:
                where = f"docs/{page}:{step['line']}"
                try:
                    if step["lang"] == "python":
                        buffer = io.StringIO()
                        with contextlib.redirect_stdout(buffer):
                            exec(compile(step["code"], where, "exec"), namespace)
                        stdout = buffer.getvalue()
                    elif _INSTALLS.search(step["code"]):
                        raise RuntimeError("refused: a documentation example must not install packages")
                    else:
                        proc = subprocess.run(
                            ["bash", "-e", "-o", "pipefail", "-c", step["code"]],
                            cwd=directory,
                            capture_output=True,
                            text=True,
                            timeout=900,
                        )
                        if proc.returncode != 0:
                            raise RuntimeError(f"exit status {proc.returncode}; stderr ends:\n{proc.stderr[-3000:]}")
                        stdout = proc.stdout
                    if step["expect"] is not None and not output_matches(step["expect"], stdout):
                        raise AssertionError(f"printed\n{stdout}\nbut the page shows\n{step['expect']}")
                except BaseException as exc:  # every failure is reported, then the next page runs
                    detail = "".join(traceback.format_exception(exc)) if step["lang"] == "python" else str(exc)
                    outcome = {"ok": False, "where": where, "error": detail[-4000:]}
                    break
            results[page] = outcome
            print(f"docs/{page}: {'ok' if outcome['ok'] else 'FAILED at ' + outcome['where']}", flush=True)
            Path(result_path).write_text(json.dumps(results))
    finally:
        if keeper is not None:
            keeper.close()


if __name__ == "__main__":
    _run_pages(sys.argv[1], sys.argv[2])
