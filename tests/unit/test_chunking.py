"""Chunk mode for long documents: the boundary rule (real tokenizer), max over chunks, every document once,
edges and bounds, vLLM = the reference."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qwen3_rerank import (
    DEFAULT_INSTRUCTION,
    DocumentChunk,
    DocumentTooLongError,
    PromptBuilder,
    RankedDocument,
    Reranker,
    canonical_prompt,
)
from qwen3_rerank.backends.base import ThreadedAsyncMixin
from qwen3_rerank.chunking import cut_documents

CONTROL_SPELLINGS = ("<|", "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
QUERY = "what is the capital of France?"


def whole_string_ids(builder: PromptBuilder, document: str, query: str = QUERY) -> list[int]:
    """Qwen's reference: the canonical string of the text through the full tokenizer in one piece."""
    return builder.hf_tokenizer.encode(canonical_prompt(DEFAULT_INSTRUCTION, query, document), add_special_tokens=False)


def check_cuts(builder: PromptBuilder, document: str, size: int, overlap: int) -> list:
    """The boundary rule, for one document: see qwen3_rerank.chunking.cut_documents."""
    [cuts] = cut_documents(builder, [document], size, overlap)
    doc_ids = builder.document_ids([document])[0]
    prompts = builder.chunk_prompts(DEFAULT_INSTRUCTION, QUERY, [c.ids for c in cuts])
    assert cuts[0].token_start == 0 and cuts[0].char_start == 0
    assert cuts[-1].token_end == len(doc_ids) and cuts[-1].char_end == len(document)
    for cut, prompt in zip(cuts, prompts, strict=True):
        text = document[cut.char_start : cut.char_end]
        # The chunk's ids are those of its text, as the canonical prompt of that text holds them.
        assert cut.ids == builder.document_ids([text])[0]
        if not any(s in text for s in CONTROL_SPELLINGS):
            assert prompt == whole_string_ids(builder, text)
        assert 1 <= len(cut.ids) <= size
        assert cut.token_start < cut.token_end
        # A cut before an id that starts with a space (a word boundary) keeps the document's own ids.
        word_start = cut.token_start == 0 or doc_ids_start_with_space(builder, document, cut.token_start)
        word_end = cut.token_end == len(doc_ids) or doc_ids_start_with_space(builder, document, cut.token_end)
        if word_start and word_end:
            assert cut.ids == doc_ids[cut.token_start : cut.token_end]
    for before, after in itertools.pairwise(cuts):
        assert before.token_start < after.token_start <= before.token_end
        assert after.char_start > before.char_start
        # Nothing of the text is skipped: at most the one space a word cut hands to the template.
        gap = document[before.char_end : after.char_start]
        assert gap in ("", " ")
        if overlap == 0:
            assert after.token_start == before.token_end
    return cuts


def doc_ids_start_with_space(builder: PromptBuilder, document: str, k: int) -> bool:
    encoding = builder._plain.encode(" " + document, add_special_tokens=False)
    start, end = encoding.offsets[k]
    clean = encoding.offsets[k - 1][1] <= start < end
    return clean and (" " + document)[start] == " "


# -- the boundary rule, with the real tokenizer ----------------------------------------------------------

words = st.sampled_from(
    [
        "Paris",
        "the",
        " ",
        "  ",
        "\n",
        "\n\n",
        "capital",
        "naïve",
        "café",
        "中文",
        "日本語の",
        "😀",
        "🙂🙂",
        "'s",
        "'ll",
        "123",
        "4.5",
        "e\u0301",
        "—",
        "\t",
        "a\r\nb",
        "!?",
        "(x)",
    ]
)
unicode_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
documents = st.one_of(
    unicode_text,
    st.lists(words, max_size=150).map(" ".join),
    st.lists(st.one_of(words, unicode_text.map(lambda t: t[:12])), max_size=120).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(document=documents, size=st.integers(8, 48), overlap_share=st.floats(0, 0.9))
def test_chunk_prompts_are_canonical_prompts_of_the_chunk_texts(prompt_builder, document, size, overlap_share):
    check_cuts(prompt_builder, document, size, int(size * overlap_share))


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(documents, min_size=2, max_size=6), size=st.integers(8, 48), overlap_share=st.floats(0, 0.9))
def test_documents_cut_together_are_cut_as_each_alone(prompt_builder, batch, size, overlap_share):
    # cut_documents tokenizes the chunks of all documents in one batch: the cuts must not depend on it.
    overlap = int(size * overlap_share)
    together = cut_documents(prompt_builder, batch, size, overlap)
    assert together == [cut_documents(prompt_builder, [document], size, overlap)[0] for document in batch]


@pytest.mark.parametrize(
    "document",
    [
        "word " * 400,
        "Paris is the capital of France. " * 60,
        "日本語のテキストと中文混合" * 40,  # no spaces at all: cuts at character boundaries
        "🙂" * 300,  # every character is several byte-level ids
        "naïve café — ÅÆØ " * 50,
        "line one\n\nline two\n" * 60,
        "x" * 3000,
    ],
)
@pytest.mark.parametrize(("size", "overlap"), [(16, 0), (40, 10), (100, 99)])
def test_chunk_rule_on_hard_texts(prompt_builder, document: str, size: int, overlap: int) -> None:
    cuts = check_cuts(prompt_builder, document, size, overlap)
    assert len(cuts) > 1


def test_word_cuts_keep_the_documents_own_ids(prompt_builder) -> None:
    document = " ".join(f"word{i}" for i in range(300))
    doc_ids = prompt_builder.document_ids([document])[0]
    [cuts] = cut_documents(prompt_builder, [document], 32, 8)
    assert len(cuts) > 5
    for cut in cuts:
        assert cut.ids == doc_ids[cut.token_start : cut.token_end]
        assert not document[cut.char_start : cut.char_end].startswith(" ")


def test_overlap_is_about_what_was_asked(prompt_builder) -> None:
    document = " ".join(["alpha"] * 400)  # one id per word
    [cuts] = cut_documents(prompt_builder, [document], 20, 5)
    for before, after in itertools.pairwise(cuts[:-1]):
        assert before.token_end - after.token_start == 5
        assert after.token_end - after.token_start == 20


# -- a fake backend: exact max semantics and one call per request, without a model -----------------------


class HashBackend(ThreadedAsyncMixin):
    """Deterministic scores from the prompt ids; records every call."""

    name = "hash"
    max_prompt_tokens = None

    def __init__(self) -> None:
        self.calls: list[int] = []

    @staticmethod
    def value(prompt: Sequence[int]) -> float:
        return (sum((i + 1) * t for i, t in enumerate(prompt)) % 9973) / 9973

    def score_prompts(self, prompts):
        self.calls.append(len(prompts))
        return [self.value(p) for p in prompts]

    def close(self) -> None:
        pass


@pytest.fixture
def hashed(tokenizer_dir):
    backend = HashBackend()
    with Reranker(str(tokenizer_dir), backend=backend, max_length=160, long_documents="chunk") as reranker:
        yield reranker, backend


CITY_WORDS = ["Paris", "France", "capital", "city", "river", "Seine", "museum", "tower", "bread", "wine"]


def long_docs() -> list[str]:
    rng = random.Random(7)
    vocab = [*CITY_WORDS, "中文", "naïve", "😀"]
    return [" ".join(rng.choice(vocab) for _ in range(n)) for n in (0, 3, 40, 200, 500)] + [""]


def test_score_is_the_max_over_the_canonical_prompts_of_the_chunk_texts(hashed, prompt_builder) -> None:
    reranker, _ = hashed
    docs = long_docs()
    chunked = reranker.score_chunks(QUERY, docs)
    scores = reranker.score(QUERY, docs)
    for doc, chunks, score in zip(docs, chunked, scores, strict=True):
        expected = [HashBackend.value(whole_string_ids(prompt_builder, doc[c.char_start : c.char_end])) for c in chunks]
        assert [c.score for c in chunks] == expected
        assert score == max(expected)
    assert [len(c) for c in chunked][:3] == [1, 1, 1] and len(chunked[4]) > len(chunked[3]) > 1


def test_all_chunks_of_a_call_go_to_the_backend_together(hashed) -> None:
    reranker, backend = hashed
    docs = long_docs()
    chunked = reranker.score_chunks(QUERY, docs)
    # Identical prompts are scored once: the two empty documents' chunks are one prompt.
    texts = [doc[c.char_start : c.char_end] for doc, chunks in zip(docs, chunked, strict=True) for c in chunks]
    total = len(set(texts))
    assert total == len(texts) - 1
    backend.calls.clear()
    reranker.score(QUERY, docs)
    reranker.score_pairs([(QUERY, d) for d in docs])
    reranker.rank(QUERY, docs)
    assert backend.calls == [total, total, total]


def test_rank_reports_the_winning_chunk_and_every_chunk_on_request(hashed) -> None:
    reranker, _ = hashed
    docs = long_docs()
    ranked = reranker.rank(QUERY, docs, return_chunks=True)
    assert sorted(r.index for r in ranked) == list(range(len(docs)))  # every document once
    assert [r.score for r in ranked] == sorted(reranker.score(QUERY, docs), reverse=True)
    for r in ranked:
        assert r.document == docs[r.index]
        assert isinstance(r.best_chunk, DocumentChunk) and r.chunks is not None
        assert r.best_chunk == max(r.chunks, key=lambda c: c.score)
        assert r.best_chunk.score == r.score
        assert r.best_chunk == r.chunks[r.best_chunk.index]
    plain = reranker.rank(QUERY, docs, top_n=2)
    assert [r.index for r in plain] == [r.index for r in ranked[:2]]
    assert all(r.chunks is None and r.best_chunk is not None for r in plain)
    kept = reranker.rank(QUERY, docs, threshold=ranked[2].score)
    assert [r.index for r in kept] == [r.index for r in ranked[:3]]


def test_ties_go_to_the_first_chunk(tokenizer_dir) -> None:
    class Constant(HashBackend):
        def score_prompts(self, prompts):
            return [0.5] * len(prompts)

    with Reranker(str(tokenizer_dir), backend=Constant(), max_length=120, long_documents="chunk") as reranker:
        [ranked] = reranker.rank(QUERY, ["word " * 300])
    assert ranked.best_chunk is not None and ranked.best_chunk.index == 0


def test_score_pairs_and_async_agree_with_score(hashed) -> None:
    reranker, _ = hashed
    docs = long_docs()
    scores = reranker.score(QUERY, docs)
    assert reranker.score_pairs([(QUERY, d) for d in docs]) == scores
    assert reranker.score_pairs([((DEFAULT_INSTRUCTION, QUERY), d) for d in docs]) == scores
    assert asyncio.run(reranker.ascore(QUERY, docs)) == scores
    assert asyncio.run(reranker.ascore_pairs([(QUERY, d) for d in docs])) == scores
    ranked = reranker.rank(QUERY, docs, return_chunks=True)
    assert asyncio.run(reranker.arank(QUERY, docs, return_chunks=True)) == ranked
    assert asyncio.run(reranker.ascore_chunks(QUERY, docs)) == reranker.score_chunks(QUERY, docs)


def test_per_call_options_override_the_rerankers(hashed) -> None:
    reranker, _ = hashed
    doc = "word " * 500
    truncated = reranker.score(QUERY, [doc], long_documents="truncate")
    assert truncated == [HashBackend.value(reranker.prompts.build_one(DEFAULT_INSTRUCTION, QUERY, doc))]
    assert reranker.rank(QUERY, [doc], long_documents="truncate")[0].best_chunk is None
    assert len(reranker.score_chunks(QUERY, [doc], chunk_tokens=20)[0]) > len(reranker.score_chunks(QUERY, [doc])[0])
    view = reranker.with_options(long_documents="truncate")
    assert view.score(QUERY, [doc]) == truncated
    view.close()
    assert not reranker.closed  # the view shares the engine and leaves it open


def test_document_shorter_than_a_chunk_exactly_one_and_empty(hashed, prompt_builder) -> None:
    reranker, _ = hashed
    exact = " ".join(["alpha"] * 19)  # 19 words -> " alpha" * 19: 19 ids
    assert len(prompt_builder.document_ids([exact])[0]) == 19
    [[short], [one], [empty]] = reranker.score_chunks(QUERY, ["Paris.", exact, ""], chunk_tokens=19)
    assert (short.token_start, short.token_end, short.char_start, short.char_end) == (0, 2, 0, 6)
    assert (one.token_start, one.token_end, one.char_start, one.char_end) == (0, 19, 0, len(exact))
    assert (empty.token_start, empty.token_end, empty.char_start, empty.char_end) == (0, 1, 0, 0)
    assert [c.score for c in (short, one, empty)] == reranker.score(
        QUERY, ["Paris.", exact, ""], long_documents="truncate"
    )
    assert len(reranker.score_chunks(QUERY, [exact + " alpha"], chunk_tokens=19)[0]) == 2
    assert reranker.score_chunks(QUERY, []) == [] and reranker.rank(QUERY, []) == ()


def test_bad_options_are_clear_errors(tokenizer_dir, hashed) -> None:
    reranker, backend = hashed
    with pytest.raises(ValueError, match="chunk_overlap=9 must be smaller than chunk_tokens=9"):
        Reranker(str(tokenizer_dir), backend=backend, chunk_tokens=9, chunk_overlap=9)
    with pytest.raises(ValueError, match="chunk_overlap=30 must be smaller than chunk_tokens=20"):
        reranker.score(QUERY, ["x"], chunk_tokens=20, chunk_overlap=30)
    with pytest.raises(ValueError, match="long_documents must be 'truncate' or 'chunk'"):
        reranker.score(QUERY, ["x"], long_documents="split")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_tokens must be an int >= 8"):
        reranker.score(QUERY, ["x"], chunk_tokens=0)
    with pytest.raises(ValueError, match="max_chunks must be a positive int or None"):
        reranker.score(QUERY, ["x"], max_chunks=0)
    # The default chunk size is the budget; an overlap that is not smaller fails when the budget is known.
    budget = reranker.prompts.plan(DEFAULT_INSTRUCTION, QUERY).document_budget
    with pytest.raises(ValueError, match=f"chunk_overlap={budget} must be smaller than chunk_tokens={budget}"):
        reranker.score(QUERY, ["x"], chunk_overlap=budget)
    with pytest.raises(ValueError, match=f"chunk_tokens={budget + 1} does not fit"):
        reranker.score(QUERY, ["x"], chunk_tokens=budget + 1)


def test_max_chunks_is_a_clear_error_before_anything_is_scored(hashed) -> None:
    reranker, backend = hashed
    backend.calls.clear()
    docs = ["short", "word " * 2000]
    with pytest.raises(DocumentTooLongError, match=r"document 1 needs \d+ chunks of 20 tokens, more than max_chunks=3"):
        reranker.score(QUERY, docs, chunk_tokens=20, max_chunks=3)
    assert backend.calls == []
    assert len(reranker.score_chunks(QUERY, docs, chunk_tokens=20, max_chunks=1000)[1]) > 3
    assert isinstance(DocumentTooLongError("x"), ValueError)


def test_ranked_document_stays_compatible() -> None:
    ranked = RankedDocument(0, 0.5, "doc")
    assert (ranked.best_chunk, ranked.chunks) == (None, None)
    with pytest.raises(AttributeError):
        ranked.score = 1.0  # type: ignore[misc]
    assert not hasattr(ranked, "__dict__")


# -- the tiny model: the best chunk wins, and vLLM agrees with the reference ----------------------------


@pytest.fixture(scope="module")
def short_reference(tiny_model_dir, reference_reranker):
    """The reference engine with a short max_length, so truncation and chunking differ."""
    with Reranker(str(tiny_model_dir), backend=reference_reranker.backend, max_length=110) as reranker:
        yield reranker


def test_a_document_whose_best_chunk_is_its_last_scores_that_chunk(short_reference) -> None:
    rng = random.Random(13)
    vocab = [*CITY_WORDS, "cheese", "history", "king", "revolution", "bridge", "island", "cathedral", "people"]
    vocab += ["language", "art"]
    candidates = [" ".join(rng.choice(vocab) for _ in range(90)) for _ in range(24)]
    chunked = short_reference.score_chunks(QUERY, candidates)
    # The seeded tiny model is deterministic, so the document found here is the same on every run.
    found = [
        (doc, chunks)
        for doc, chunks in zip(candidates, chunked, strict=True)
        if len(chunks) >= 3 and chunks[-1].score > max(c.score for c in chunks[:-1]) + 1e-4
    ]
    assert found, "no candidate has its best chunk last; change the seed"
    document, chunks = found[0]
    last = chunks[-1]
    [ranked] = short_reference.rank(QUERY, [document], long_documents="chunk")
    assert ranked.best_chunk is not None and ranked.best_chunk.index == len(chunks) - 1
    assert ranked.score == pytest.approx(last.score, abs=1e-6)
    # That score is the score of the last chunk's text as a document of its own.
    alone = short_reference.score(QUERY, [document[last.char_start : last.char_end]])[0]
    assert ranked.score == pytest.approx(alone, abs=1e-6)
    # Truncation sees only the beginning, and scores lower.
    truncated = short_reference.score(QUERY, [document])[0]
    assert truncated < ranked.score - 1e-4


def test_vllm_equals_reference_in_chunk_mode(vllm_reranker, reference_reranker) -> None:
    rng = random.Random(3)
    vocab = ["Paris", "France", "capital", "city", "river", "Seine", "museum", "中文", "naïve", "😀", "bread", "wine"]
    docs = [" ".join(rng.choice(vocab) for _ in range(n)) for n in (0, 5, 60, 150, 300)]
    options = {"long_documents": "chunk", "chunk_tokens": 48, "chunk_overlap": 12}
    got = vllm_reranker.score(QUERY, docs, **options)
    assert got == pytest.approx(reference_reranker.score(QUERY, docs, **options), abs=1e-5)
    got_chunks = vllm_reranker.score_chunks(QUERY, docs, chunk_tokens=48, chunk_overlap=12)
    ref_chunks = reference_reranker.score_chunks(QUERY, docs, chunk_tokens=48, chunk_overlap=12)
    for mine, theirs in zip(got_chunks, ref_chunks, strict=True):
        assert [(c.token_start, c.token_end, c.char_start, c.char_end) for c in mine] == [
            (c.token_start, c.token_end, c.char_start, c.char_end) for c in theirs
        ]
        assert [c.score for c in mine] == pytest.approx([c.score for c in theirs], abs=1e-5)
    pairs = [((DEFAULT_INSTRUCTION, QUERY), d) for d in docs]
    assert vllm_reranker.score_pairs(pairs, **options) == pytest.approx(got, abs=1e-5)


def test_server_text_endpoints_send_each_chunk_as_its_own_text(prompt_builder) -> None:
    """endpoint='rerank'/'score' turn prompts back into (instruction, query, document): a chunk's prompt
    comes back as exactly the chunk's text, so the server scores the same chunk."""
    from qwen3_rerank.backends.server_requests import prompt_texts

    document = "Cats purr when content. " * 30 + "日本語のテキスト" * 10 + " Paris is the capital of France."
    [cuts] = cut_documents(prompt_builder, [document], 24, 6)
    for cut, prompt in zip(
        cuts, prompt_builder.chunk_prompts(DEFAULT_INSTRUCTION, QUERY, [c.ids for c in cuts]), strict=True
    ):
        assert prompt_texts(prompt_builder.hf_tokenizer, prompt, "rerank") == (
            DEFAULT_INSTRUCTION,
            QUERY,
            document[cut.char_start : cut.char_end],
        )
