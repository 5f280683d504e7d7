"""Bad input, generated and hand-picked: a clear error (type, what was wrong, how to fix) before any engine
sees it, or a documented result, never a stack trace from inside vLLM or tokenizers.

Complements tests/unit/test_validation.py (fixed cases); the checkpoint cases here run in milliseconds
because they fail before an engine starts.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import prop_settings

from qwen3_rerank import (
    ModelNotFoundError,
    NotAQwen3RerankerError,
    PromptTooLongError,
    Reranker,
)


class SpyBackend:
    """A ScoringBackend that records what reaches it (nothing should, for bad input)."""

    name = "spy"
    max_prompt_tokens = None

    def __init__(self) -> None:
        self.calls = 0

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        self.calls += 1
        return [0.5] * len(prompts)

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        return self.score_prompts(prompts)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def spy(tokenizer_dir) -> tuple[Reranker, SpyBackend]:
    backend = SpyBackend()
    return Reranker(str(tokenizer_dir), backend=backend, max_length=512), backend


not_text = st.one_of(
    st.none(),
    st.binary(max_size=8),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.builds(bytearray, st.binary(max_size=4)),
    st.builds(object),
)
surrogate_text = st.builds(
    lambda a, s, b: a + s + b, st.text(max_size=5), st.characters(categories=("Cs",)), st.text(max_size=5)
)


@prop_settings(200)
@given(docs=st.lists(st.text(max_size=20), max_size=8), bad=not_text, data=st.data())
def test_a_non_str_document_is_named_by_its_index(spy, docs, bad, data) -> None:
    reranker, backend = spy
    at = data.draw(st.integers(0, len(docs)))
    docs = [*docs[:at], bad, *docs[at:]]
    calls = backend.calls
    hint = r".*decode" if isinstance(bad, bytes | bytearray) else ""
    for call in (reranker.score, reranker.rank):
        with pytest.raises(TypeError, match=rf"documents\[{at}\] must be a str, got {type(bad).__name__}{hint}"):
            call("q", docs)
    with pytest.raises(TypeError, match=rf"pairs\[{at}\] document must be a str"):
        reranker.score_pairs([("q", d) for d in docs])
    assert backend.calls == calls


@prop_settings(100)
@given(docs=st.lists(st.text(max_size=20), max_size=8), bad=surrogate_text, data=st.data())
def test_a_lone_surrogate_is_a_clear_error(spy, docs, bad, data) -> None:
    """Regression: tokenizers raised "TextEncodeInput must be Union[...]" for such text."""
    reranker, _ = spy
    at = data.draw(st.integers(0, len(docs)))
    docs = [*docs[:at], bad, *docs[at:]]
    with pytest.raises(ValueError, match=rf"documents\[{at}\] holds a lone surrogate .* errors='replace'"):
        reranker.rank("q", docs)
    with pytest.raises(ValueError, match=r"query holds a lone surrogate"):
        reranker.score(bad, ["d"])
    with pytest.raises(ValueError, match=r"instruction holds a lone surrogate"):
        reranker.score("q", ["d"], instruction=bad)


@prop_settings(100)
@given(query=not_text)
def test_a_non_str_query_is_a_clear_error(spy, query) -> None:
    reranker, _ = spy
    with pytest.raises(TypeError, match="query must be a str"):
        reranker.rank(query, ["d"])


@prop_settings(200)
@given(top_n=st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3), st.booleans()))
def test_bad_top_n(spy, top_n) -> None:
    reranker, _ = spy
    error = ValueError if isinstance(top_n, int) and not isinstance(top_n, bool) else TypeError
    with pytest.raises(error, match="top_n"):
        reranker.rank("q", ["d"], top_n=top_n)


@prop_settings(200)
@given(
    threshold=st.one_of(
        st.floats().filter(lambda x: not 0.0 <= x <= 1.0),
        st.integers().filter(lambda x: x not in (0, 1)),
        st.text(max_size=3),
        st.booleans(),
    )
)
def test_bad_threshold(spy, threshold) -> None:
    reranker, _ = spy
    numeric = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    with pytest.raises(ValueError if numeric else TypeError, match="threshold"):
        reranker.rank("q", ["d"], threshold=threshold)


def test_numpy_numbers_are_accepted(spy) -> None:
    """Regression: top_n=np.int64(3) and threshold=np.float32(0.5) were refused as "not an int/number"."""
    np = pytest.importorskip("numpy")
    reranker, _ = spy
    ranked = reranker.rank("q", ["a", "b", "c", "d"], top_n=np.int64(3), threshold=np.float32(0.5))
    assert len(ranked) == 3  # the spy scores everything 0.5
    assert reranker.rank("q", ["a"], threshold=np.float64(0.6)) == ()
    with pytest.raises(ValueError, match="top_n"):
        reranker.rank("q", ["a"], top_n=np.int32(0))
    with pytest.raises(ValueError, match="threshold"):
        reranker.rank("q", ["a"], threshold=np.float32(math.nan))


@prop_settings(150)
@given(sizes=st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_mixed_pair_lengths_name_the_first_bad_pair(spy, sizes) -> None:
    reranker, backend = spy
    pairs = [tuple(f"x{k}" for k in range(n)) for n in sizes]
    bad = [i for i, n in enumerate(sizes) if n != 2]
    calls = backend.calls
    if not bad:
        assert len(reranker.score_pairs(pairs)) == len(pairs)
        return
    with pytest.raises(ValueError, match=rf"pairs\[{bad[0]}\] must be a \(query, document\) pair"):
        reranker.score_pairs(pairs)
    assert backend.calls == calls


def test_empty_documents_give_empty_results(spy) -> None:
    reranker, backend = spy
    calls = backend.calls
    assert reranker.score("q", []) == []
    assert reranker.score("q", ()) == []
    assert reranker.rank("q", [], top_n=1, threshold=0.5) == ()
    assert reranker.score_pairs([]) == []
    assert backend.calls == calls  # nothing to score, nothing sent


def test_instruction_and_query_longer_than_the_budget(spy) -> None:
    reranker, backend = spy
    calls = backend.calls
    long_query = "word " * 600  # max_length is 512 here
    for call in (
        lambda: reranker.score(long_query, ["d"]),
        lambda: reranker.rank(long_query, ["d"]),
        lambda: reranker.score("q", ["d"], instruction=long_query),
        lambda: reranker.score_pairs([("q", "d"), (long_query, "d")]),
    ):
        with pytest.raises(PromptTooLongError, match=r"max_length=512; only the document is ever truncated"):
            call()
    assert backend.calls == calls
    # a long document is not an error: it is cut
    assert len(reranker.score("q", ["word " * 600])) == 1


# -- checkpoints (fail in milliseconds, before any engine) ----------------------------------------


def copy_of(src: Path, dst: Path, *, config: str | None = None, weights: bool = True) -> Path:
    shutil.copytree(src, dst)
    if config is not None:
        (dst / "config.json").write_text(config)
    if not weights:
        for path in dst.glob("*.safetensors"):
            path.unlink()
    return dst


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_a_model_path_that_does_not_exist(tmp_path, tokenizer_dir, backend) -> None:
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelNotFoundError, match="local Qwen3-Reranker directory"):
        Reranker(missing, backend=backend)  # the tokenizer, loaded first, says so
    # Regression (vLLM): with a separate tokenizer, huggingface_hub's HFValidationError surfaced.
    with pytest.raises(ModelNotFoundError, match=r"Model directory .* does not exist"):
        Reranker(missing, backend=backend, tokenizer=str(tokenizer_dir))
    # A name that could be on the Hub is left to the loaders, which say what to do.
    with pytest.raises(ModelNotFoundError, match="local Qwen3-Reranker directory"):
        Reranker("no-such-org/no-such-model", backend=backend)


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_a_tokenizer_directory_is_not_a_model(tokenizer_dir, backend) -> None:
    """Regression (vLLM): "1 validation error for ModelConfig" after seconds of engine start-up."""
    started = time.monotonic()
    with pytest.raises(NotAQwen3RerankerError, match=r"has no config\.json"):
        Reranker(str(tokenizer_dir), backend=backend)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
def test_a_checkpoint_without_weights(tmp_path, tiny_model_dir, backend) -> None:
    """Regression (vLLM): a raw RuntimeError "Engine core initialization failed" after a minute."""
    broken = copy_of(tiny_model_dir, tmp_path / "m", weights=False)
    with pytest.raises(ModelNotFoundError, match=r"no weights \(\*\.safetensors or \*\.bin\)"):
        Reranker(str(broken), backend=backend)


@pytest.mark.parametrize("backend", ["vllm", "transformers"])
@pytest.mark.parametrize("model_type", ["bert", "qwen2", "llama"])
def test_a_model_that_is_not_qwen3(tmp_path, tiny_model_dir, backend, model_type) -> None:
    config = (tiny_model_dir / "config.json").read_text()
    config = config.replace('"model_type": "qwen3"', f'"model_type": "{model_type}"')
    other = copy_of(tiny_model_dir, tmp_path / "m", config=config)
    with pytest.raises(NotAQwen3RerankerError, match=f"is a '{model_type}' model, not a Qwen3"):
        Reranker(str(other), backend=backend)


def test_a_broken_config(tmp_path, tiny_model_dir) -> None:
    """Regression: the tokenizer loader, reading config.json first, called the directory "not a local model
    directory" and suggested downloading it."""
    broken = copy_of(tiny_model_dir, tmp_path / "m", config="{not json")
    with pytest.raises(NotAQwen3RerankerError, match="not a readable JSON model config"):
        Reranker(str(broken))


def test_a_file_is_not_a_model_directory(tmp_path, tokenizer_dir) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="is a file, not a model directory"):
        Reranker(str(path), tokenizer=str(tokenizer_dir))
