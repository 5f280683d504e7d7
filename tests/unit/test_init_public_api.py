"""The public surface is pinned: a change to it is a deliberate, reviewed change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from paths import REPO

import qwen3_rerank


def test_all_is_pinned() -> None:
    assert sorted(qwen3_rerank.__all__) == sorted(
        [
            "BACKEND_NAMES",
            "ChunkOptions",
            "RerankerSettings",
            "ScoringBackend",
            "BackendNotInstalledError",
            "DEFAULT_INSTRUCTION",
            "DEFAULT_MAX_LENGTH",
            "DEFAULT_MODEL",
            "DocumentChunk",
            "DocumentTooLongError",
            "EngineError",
            "ModelNotFoundError",
            "NO_TOKEN_ID",
            "NotAQwen3RerankerError",
            "PromptBuilder",
            "PromptTooLongError",
            "Qwen3RerankError",
            "Qwen3RerankFileNotFoundError",
            "Qwen3RerankTypeError",
            "Qwen3RerankValueError",
            "RankedDocument",
            "Reranker",
            "ServerError",
            "YES_TOKEN_ID",
            "__version__",
            "canonical_prompt",
            "relevance_from_logits",
        ]
    )
    for name in qwen3_rerank.__all__:
        assert hasattr(qwen3_rerank, name)
    assert (qwen3_rerank.YES_TOKEN_ID, qwen3_rerank.NO_TOKEN_ID) == (9693, 2152)


def test_importing_the_package_imports_no_engine() -> None:
    """A dependency-free core: vLLM, torch and transformers load only when a backend needs them."""
    code = "import sys, qwen3_rerank; print(sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_adapter_support_is_pinned() -> None:
    """The module the adapters build on: public for adapter authors, stable within 0.1."""
    from qwen3_rerank import adapter_support

    assert sorted(adapter_support.__all__) == sorted(
        [
            "CHUNK_FIELDS",
            "RERANKER_FIELDS",
            "RerankerAdapterFields",
            "RerankerAdapterMixin",
            "Threshold",
            "TopN",
            "adapter_arank",
            "adapter_fields",
            "adapter_rank",
            "check_chunk_fields",
            "chosen_model",
            "chunk_metadata",
            "coerce_threshold",
            "coerce_top_n",
            "cross_encoder_model_kwargs",
            "first_tokens",
            "given_reranker",
        ]
    )
    assert adapter_support.CHUNK_FIELDS == ("long_documents", "chunk_tokens", "chunk_overlap", "max_chunks")
    assert adapter_support.RERANKER_FIELDS == (
        "backend",
        "engine_options",
        "max_length",
        "batch_size",
        "tokenizer",
        "show_progress",
    )


def test_adapters_import_only_public_names_and_declare_a_compatible_core() -> None:
    import ast
    import tomllib

    from qwen3_rerank import adapter_support

    repo = REPO
    public = {"qwen3_rerank": set(qwen3_rerank.__all__), "qwen3_rerank.adapter_support": set(adapter_support.__all__)}
    for package in ("langchain/langchain_qwen3_rerank", "llama-index/llama_index/postprocessor/qwen3_rerank"):
        for source in (repo / "integrations" / package).glob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    assert not any(a.name.startswith("qwen3_rerank") for a in node.names), source
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qwen3_rerank"):
                    assert node.module in public, f"{source.name} imports from {node.module}"
                    assert {a.name for a in node.names} <= public[node.module], source.name
    version = tuple(int(part) for part in qwen3_rerank.__version__.split(".")[:2])
    for project in ("langchain", "llama-index"):
        data = tomllib.loads((repo / "integrations" / project / "pyproject.toml").read_text(encoding="utf-8"))
        assert "qwen3-rerank>=0.1,<0.2" in data["project"]["dependencies"], project
        assert (0, 1) <= version < (0, 2), "the core left the range the adapters declare: update both"


def test_every_error_derives_from_the_base_and_its_builtin() -> None:
    from qwen3_rerank import errors

    builtins = {
        "Qwen3RerankValueError": ValueError,
        "Qwen3RerankTypeError": TypeError,
        "PromptTooLongError": ValueError,
        "NotAQwen3RerankerError": ValueError,
        "Qwen3RerankFileNotFoundError": FileNotFoundError,
        "ModelNotFoundError": FileNotFoundError,
        "BackendNotInstalledError": ImportError,
        "EngineError": RuntimeError,
        "ServerError": RuntimeError,
        "DocumentTooLongError": ValueError,
    }
    assert sorted(builtins) == sorted(set(errors.__all__) - {"Qwen3RerankError"})
    for name, builtin in builtins.items():
        cls = getattr(errors, name)
        assert issubclass(cls, errors.Qwen3RerankError) and issubclass(cls, builtin), name


# Raises of bare builtins allowed per file (none left: a new one means a new Qwen3Rerank* subclass is due).
_BARE_RAISES_ALLOWED: dict[str, int] = {}


def test_no_deliberate_raise_of_a_bare_builtin() -> None:
    """Every `raise SomeBuiltinError(...)` in the package is a bug class, so errors.py's promise holds."""
    import ast
    import builtins
    from pathlib import Path

    root = Path(qwen3_rerank.__file__).parent
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                name = node.exc.func.id
                if isinstance(getattr(builtins, name, None), type) and issubclass(getattr(builtins, name), Exception):
                    found.setdefault(path.relative_to(root).as_posix(), []).append(f"{name} (line {node.lineno})")
    assert {f: len(v) for f, v in found.items()} == _BARE_RAISES_ALLOWED, found


def _sources() -> list[Path]:
    repo = REPO
    sources = [*(repo / "src").rglob("*.py"), *(repo / "integrations").glob("*/*/**/*.py")]
    return [path for path in sources if "tests" not in path.parts]


def test_every_module_declares_its_surface_and_one_cross_reference_syntax() -> None:
    """docs/contributing.md: every module says what it exports (``__all__``); docstrings cross-reference with
    one syntax, mkdocstrings' links ``[`name`][qwen3_rerank.path.name]`` (rendered as links on the API page),
    never Sphinx roles such as ``:class:`` (which mkdocstrings prints as plain text)."""
    import re

    repo = REPO
    role = re.compile(r":(?:class|func|meth|data|mod|attr|exc|obj):`")
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        assert not role.search(text), f"{path}: cross-reference with [`Name`][qwen3_rerank.path.Name], not a role"
        if path.is_relative_to(repo / "src") and path.name != "__main__.py":
            assert re.search(r"^__all__ = ", text, re.M), f"{path} has no __all__"


def test_every_cross_reference_names_an_object_that_exists() -> None:
    """A link whose target was renamed or moved is caught here, also in docstrings the API page does not render."""
    import importlib
    import re

    link = re.compile(r"\]\[((?:qwen3_rerank|langchain_qwen3_rerank|llama_index)(?:\.\w+)*)\]")
    targets = {target for path in _sources() for target in link.findall(path.read_text(encoding="utf-8"))}
    assert len(targets) > 40  # the pattern still matches what the docstrings write
    broken = []
    for target in sorted(targets):
        parts = target.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for name in parts[cut:]:
                    obj = getattr(obj, name) if hasattr(obj, name) else obj.__annotations__[name]
            except (AttributeError, KeyError):
                broken.append(target)
            break
        else:
            broken.append(target)
    assert broken == []


def test_no_source_file_is_too_big_to_read() -> None:
    """One concept per module, none over ~400 lines. Two are one concept each and may run a little longer:
    reranker.py (the Reranker, whose public keyword lists are written out for IDEs and the API page) and
    adapter_support.py (the contract both adapters share)."""

    one_concept = {"src/qwen3_rerank/reranker.py", "src/qwen3_rerank/adapter_support.py"}
    sizes = {
        path.relative_to(REPO).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in (REPO / "src").rglob("*.py")
    }
    assert {path: n for path, n in sizes.items() if n > (450 if path in one_concept else 400)} == {}


def _public_modules() -> set[str]:
    """The public modules the package docstring names (besides the package itself)."""
    import re

    return {"qwen3_rerank", *re.findall(r"``(qwen3_rerank(?:\.\w+)+)``", qwen3_rerank.__doc__ or "")}


def _api_page() -> str:
    from paths import REPO

    return (REPO / "docs" / "api.md").read_text(encoding="utf-8")


def _api_targets() -> list[str]:
    import re

    return re.findall(r"^::: ([\w.]+)", _api_page(), re.M)


def _is_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a name inside a module, not a package
        return False


def _module_of(target: str) -> str:
    parts = target.split(".")
    return next(".".join(parts[:n]) for n in range(len(parts), 0, -1) if _is_module(".".join(parts[:n])))


def test_the_package_docstring_says_every_other_module_is_internal() -> None:
    doc = " ".join((qwen3_rerank.__doc__ or "").split())
    assert "Every other module is internal" in doc
    assert {"qwen3_rerank.errors", "qwen3_rerank.evaluation", "qwen3_rerank.files"} <= _public_modules()


def test_the_api_page_documents_only_public_modules() -> None:
    """Each ``::: target`` on docs/api.md lives in a module the package docstring calls public."""
    public = _public_modules()
    for target in _api_targets():
        module = _module_of(target)
        assert module in public, f"docs/api.md documents {target}, but {module} is not a public module"
    shown = {_module_of(target) for target in _api_targets()}
    assert public <= shown, f"public modules the API page never shows: {sorted(public - shown)}"


def test_every_exported_name_is_documented_on_the_api_page() -> None:
    page, targets = _api_page(), set(_api_targets())
    for name in qwen3_rerank.__all__:
        value = getattr(qwen3_rerank, name)
        home = getattr(value, "__module__", None) if isinstance(value, type) or callable(value) else None
        assert f"qwen3_rerank.{name}" in targets or home in targets or f"`{name}`" in page, (
            f"qwen3_rerank.{name} is exported but docs/api.md never documents it"
        )
