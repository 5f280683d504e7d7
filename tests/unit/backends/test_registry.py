"""The backend table is the one place backends are named: everything that lists them agrees with it."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from paths import REPO

from qwen3_rerank import Qwen3RerankValueError, Reranker
from qwen3_rerank.backends.registry import BACKEND_NAMES, BACKENDS, BackendName, check_engine_options, needs_gpu
from qwen3_rerank.cli import _parser

ROOT = REPO  # the repository


def test_the_literal_type_is_the_table() -> None:
    assert typing.get_args(BackendName) == BACKEND_NAMES == tuple(BACKENDS)


def _backend_choices(command: str) -> tuple[str, ...]:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    parser = sub.choices[command]  # type: ignore[index]
    return tuple(next(a for a in parser._actions if a.dest == "backend").choices)


@pytest.mark.parametrize("command", ["rank", "score", "batch", "eval"])
def test_every_command_offers_every_backend(command: str) -> None:
    assert _backend_choices(command) == BACKEND_NAMES


def test_the_error_message_names_every_backend() -> None:
    with pytest.raises(Qwen3RerankValueError) as caught:
        Reranker("any", backend="nope")  # type: ignore[arg-type]
    for name in BACKEND_NAMES:
        assert repr(name) in str(caught.value)


def test_docs_and_docstrings_mention_every_backend() -> None:
    cli_row = next(line for line in (ROOT / "docs/cli.md").read_text().splitlines() if line.startswith("| `--backend`"))
    docstring = Reranker.__doc__ or ""
    for name in BACKEND_NAMES:
        assert f"`{name}`" in cli_row, name
        assert f'``"{name}"``' in docstring, name
        assert (ROOT / "docs/backends" / f"{name}.md").is_file(), name


@pytest.mark.parametrize(
    ("module", "attribute"),
    [("langchain_qwen3_rerank", "Qwen3Rerank"), ("llama_index.postprocessor.qwen3_rerank", "Qwen3Rerank")],
)
def test_the_adapters_describe_every_backend(module: str, attribute: str) -> None:
    adapter = getattr(pytest.importorskip(module), attribute)
    description = adapter.model_fields["backend"].description
    assert re.findall(r"'(\w+)'", description) == list(BACKEND_NAMES)


def test_packed_and_vllm_actors_get_a_gpu() -> None:
    from qwen3_rerank.files.ray_runner import default_gpus_per_actor

    class RayWithOneGPU:
        @staticmethod
        def cluster_resources() -> dict[str, float]:
            return {"GPU": 1.0, "CPU": 8.0}

    assert {name: default_gpus_per_actor(name, RayWithOneGPU) for name in BACKEND_NAMES} == {
        "vllm": 1,
        "transformers": 0,
        "server": 0,
        "packed": 1,
    }
    assert needs_gpu("packed") and not needs_gpu("server")


def test_the_table_imports_no_backend() -> None:
    code = (
        "import sys, qwen3_rerank.backends.registry, qwen3_rerank; "
        "heavy = [m for m in ('torch', 'vllm', 'httpx', 'qwen3_rerank.backends.vllm_backend', "
        "'qwen3_rerank.backends.packed_backend', 'qwen3_rerank.backends.transformers_backend') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_backend_checks_its_own_options() -> None:
    with pytest.raises(Qwen3RerankValueError, match="base_urls"):
        check_engine_options("server", {})
    assert check_engine_options("packed", {"token_budget": 128}) == {"token_budget": 128}
    with pytest.raises(TypeError, match="unknown option 'batch_size'"):
        check_engine_options("packed", {"batch_size": 4})


def test_the_cli_accepts_backend_packed(tiny_model_dir: Path) -> None:
    """The drift defect: --backend packed was refused by argparse although the Reranker takes it."""
    args = ["rank", "capital of France", "--model", str(tiny_model_dir), "--backend", "packed", "--dtype", "float32"]
    proc = subprocess.run(
        [sys.executable, "-m", "qwen3_rerank.cli", *args, "--format", "jsonl"],
        input="Paris is the capital of France.\nCats purr.\n",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2


def test_the_ray_example_offers_every_backend() -> None:
    """Regression: examples/ray_batch.py listed its own three backends (no packed)."""
    shown = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "ray_batch.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    choices = re.search(r"--backend \{([^}]*)\}", shown)
    assert choices is not None, shown
    assert tuple(choices.group(1).split(",")) == BACKEND_NAMES
