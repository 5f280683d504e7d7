"""Bad input fails early with a clear message that says what to fix, before any engine sees it."""

from __future__ import annotations

import math

import pytest

from qwen3_rerank import Reranker
from qwen3_rerank.errors import NotAQwen3RerankerError


@pytest.fixture(scope="module")
def reranker(reference_reranker) -> Reranker:
    return reference_reranker


@pytest.mark.parametrize(
    ("query", "documents", "error", "match"),
    [
        (None, ["d"], TypeError, "query must be a str, got NoneType"),
        (b"q", ["d"], TypeError, "decode"),
        (3, ["d"], TypeError, "query must be a str"),
        ("q", "just one string", TypeError, r"wrap a single document in a list"),
        ("q", None, TypeError, r"documents must be a list \(or another iterable\) of str"),
        ("q", ["ok", None], TypeError, r"documents\[1\] must be a str, got NoneType"),
        ("q", ["ok", b"bytes"], TypeError, r"documents\[1\].*decode"),
        (("only-one",), ["d"], ValueError, r"\(instruction, query\)"),
        (("inst", 5), ["d"], TypeError, "query must be a str"),
    ],
)
def test_bad_query_or_documents(reranker, query, documents, error, match) -> None:
    with pytest.raises(error, match=match):
        reranker.score(query, documents)
    with pytest.raises(error, match=match):
        reranker.rank(query, documents)


@pytest.mark.parametrize("query", ["", " ", "\n\t\u3000", ("Judge relevance", ""), (None, "  ")])
async def test_an_empty_or_blank_query_is_refused_everywhere(reranker, query) -> None:
    # Issue 20 item 8: relevance to nothing only reflects the document; an unfilled search box is a bug.
    match = "query is (empty|whitespace only).*give the text to rank the documents against"
    for call in (reranker.score, reranker.rank, reranker.ascore, reranker.arank):
        with pytest.raises(ValueError, match=match):
            result = call(query, ["d", ""])
            if hasattr(result, "__await__"):
                await result
    with pytest.raises(ValueError, match=r"pairs\[1\] query is (empty|whitespace only)"):
        reranker.score_pairs([("q", "d"), (query, "d")])
    assert reranker.score("q", [""]) != [], "an empty document is still scored"


@pytest.mark.parametrize(
    ("top_n", "error"), [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("3", TypeError), (True, TypeError)]
)
def test_bad_top_n(reranker, top_n, error) -> None:
    with pytest.raises(error, match="top_n"):
        reranker.rank("q", ["d"], top_n=top_n)


@pytest.mark.parametrize(
    ("threshold", "error"), [(-0.1, ValueError), (1.01, ValueError), (math.nan, ValueError), ("0.5", TypeError)]
)
def test_bad_threshold(reranker, threshold, error) -> None:
    with pytest.raises(error, match="threshold"):
        reranker.rank("q", ["d"], threshold=threshold)


@pytest.mark.parametrize(
    ("pairs", "error", "match"),
    [
        ([("q",)], ValueError, r"pairs\[0\] must be a \(query, document\) pair"),
        ([("q", "d", "x")], ValueError, r"pairs\[0\]"),
        ("qd", TypeError, "pairs must be a list"),
        ([("q", None)], TypeError, r"pairs\[0\] document must be a str"),
        ([(None, "d")], TypeError, r"pairs\[0\] query must be a str"),
    ],
)
def test_bad_pairs(reranker, pairs, error, match) -> None:
    with pytest.raises(error, match=match):
        reranker.score_pairs(pairs)


def test_bad_instruction(reranker) -> None:
    with pytest.raises(TypeError, match="instruction must be a str"):
        reranker.score("q", ["d"], instruction=1)


def test_bad_constructor_arguments(tiny_model_dir) -> None:
    with pytest.raises(ValueError, match="backend must be"):
        Reranker(str(tiny_model_dir), backend="nope")
    with pytest.raises(ValueError, match="batch_size"):
        Reranker(str(tiny_model_dir), backend="transformers", batch_size=0)


def test_a_model_that_is_not_qwen3(tmp_path, tokenizer_dir) -> None:
    import shutil

    shutil.copytree(tokenizer_dir, tmp_path, dirs_exist_ok=True)
    (tmp_path / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    with pytest.raises(NotAQwen3RerankerError, match="not a Qwen3"):
        Reranker(str(tmp_path), backend="vllm")


def test_a_tokenizer_that_is_not_qwen3(tmp_path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"a": 0, "b": 1, "yes": 2, "no": 3}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="a"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw)
    from qwen3_rerank import PromptBuilder

    with pytest.raises(NotAQwen3RerankerError, match="not the Qwen3 tokenizer"):
        PromptBuilder(tok)
