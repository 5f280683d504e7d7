"""Long documents in chunk mode: cut each document into chunks, score them all in one go, keep the best.

This module holds the options ([`ChunkOptions`][qwen3_rerank.ChunkOptions]), the cutter
(``cut_documents()``, the boundary rule), the bound on cost and the plan of a
call's chunk prompts; the prompts themselves come from the one prompt builder
([`qwen3_rerank.PromptBuilder.chunk_prompts()`][qwen3_rerank.PromptBuilder.chunk_prompts]).
"""

from __future__ import annotations

import bisect
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import DocumentTooLongError, Qwen3RerankValueError
from .prompt import DocumentChunk, PromptBuilder
from .validation import check_count, check_optional_count

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["LONG_DOCUMENT_MODES", "ChunkOptions", "ChunkPlan", "Cut", "LongDocuments", "cut_documents", "plan_chunks"]

LongDocuments = Literal["truncate", "chunk"]
LONG_DOCUMENT_MODES: tuple[str, ...] = ("truncate", "chunk")


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    """How long documents are handled: ``long_documents`` and, in chunk mode, the chunks' size and bound."""

    long_documents: LongDocuments = "truncate"
    #: ids per chunk; None: all that fits beside the template, instruction and query under max_length.
    chunk_tokens: int | None = None
    #: ids two consecutive chunks share (about: cuts fall on word boundaries).
    chunk_overlap: int = 0
    #: most chunks per document (DocumentTooLongError beyond it); None: no limit.
    max_chunks: int | None = 64

    @classmethod
    def create(
        cls, long_documents: Any = "truncate", chunk_tokens: Any = None, chunk_overlap: Any = 0, max_chunks: Any = 64
    ) -> ChunkOptions:
        if long_documents not in LONG_DOCUMENT_MODES:
            raise Qwen3RerankValueError(f"long_documents must be 'truncate' or 'chunk', got {long_documents!r}")
        tokens = check_optional_count(chunk_tokens, "chunk_tokens", minimum=8)
        overlap = check_count(chunk_overlap, "chunk_overlap", minimum=0)
        if tokens is not None and overlap >= tokens:
            raise Qwen3RerankValueError(
                f"chunk_overlap={overlap} must be smaller than chunk_tokens={tokens} (each chunk has to move "
                "forward); lower chunk_overlap."
            )
        return cls(long_documents, tokens, overlap, check_optional_count(max_chunks, "max_chunks"))

    def replace(
        self, long_documents: Any = None, chunk_tokens: Any = None, chunk_overlap: Any = None, max_chunks: Any = None
    ) -> ChunkOptions:
        """These options with the ones given (not None) changed: how a call overrides its reranker's."""
        if long_documents is None and chunk_tokens is None and chunk_overlap is None and max_chunks is None:
            return self
        return ChunkOptions.create(
            self.long_documents if long_documents is None else long_documents,
            self.chunk_tokens if chunk_tokens is None else chunk_tokens,
            self.chunk_overlap if chunk_overlap is None else chunk_overlap,
            self.max_chunks if max_chunks is None else max_chunks,
        )

    @property
    def chunked(self) -> bool:
        return self.long_documents == "chunk"


@dataclass(frozen=True, slots=True)
class Cut:
    """A chunk of a document before scoring: its token and character spans, and the ids of ``" " + text``."""

    token_start: int
    token_end: int
    char_start: int
    char_end: int
    ids: list[int]


def _step(
    position: int,
    cutter: Generator[list[str], list[Any], list[Cut]],
    encodings: list[Any] | None,
    asked: dict[int, list[str]],
    cuts: list[list[Cut]],
) -> None:
    """Send a document's cutter its encodings (None to start it): note what it asks next, or its cuts."""
    try:
        asked[position] = cutter.send(encodings)  # type: ignore[arg-type]
    except StopIteration as done:
        cuts[position] = done.value


def cut_documents(
    builder: PromptBuilder,
    documents: Sequence[str],
    chunk_tokens: int,
    chunk_overlap: int = 0,
) -> list[list[Cut]]:
    """Cut each document into chunks of at most ``chunk_tokens`` ids, consecutive chunks sharing about
    ``chunk_overlap`` ids.

    The boundary rule: a chunk is a piece of the document's *text*, and its ids are those of
    ``" " + text`` tokenized on its own, i.e. exactly what the canonical prompt of that text holds (so a
    cut never creates ids the text would not have). Cuts are chosen in the document's own ids, preferably
    before an id whose text starts with a space (a pre-tokenizer word boundary): there the chunk's ids are
    the very slice of the document's ids. A stretch without such a boundary (e.g. Chinese or Japanese
    text) is cut before any id that starts a new character; the seam's ids then come from re-tokenizing
    the chunk's text, and may differ from the slice. Every chunk is re-tokenized to check its length.
    """
    chunk_tokens = check_count(chunk_tokens, "chunk_tokens", minimum=8)
    chunk_overlap = check_count(chunk_overlap, "chunk_overlap", minimum=0)
    if chunk_overlap >= chunk_tokens:
        raise Qwen3RerankValueError(
            f"chunk_overlap={chunk_overlap} must be smaller than chunk_tokens={chunk_tokens} (each chunk has "
            "to move forward); lower chunk_overlap."
        )
    plain = builder.plain_tokenizer
    texts = [" " + doc for doc in documents]
    encodings = plain.encode_batch(texts, add_special_tokens=False)
    cutters = [
        _cut(plain, text, enc.ids, enc.offsets, chunk_tokens, chunk_overlap)
        for text, enc in zip(texts, encodings, strict=True)
    ]
    # Each cutter asks for its planned chunks to be tokenized; the asks of all documents go to the
    # tokenizer as one batch (which it spreads over the cores) instead of one small batch per document.
    cuts: list[list[Cut]] = [[] for _ in cutters]
    asked: dict[int, list[str]] = {}
    for position, cutter in enumerate(cutters):
        _step(position, cutter, None, asked, cuts)
    while asked:
        this_round = list(asked.items())
        asked.clear()
        encoded = plain.encode_batch(
            [t for _, chunk_texts in this_round for t in chunk_texts], add_special_tokens=False
        )
        offset = 0
        for position, chunk_texts in this_round:
            _step(position, cutters[position], encoded[offset : offset + len(chunk_texts)], asked, cuts)
            offset += len(chunk_texts)
    return cuts


def _cut(
    plain: Tokenizer, text: str, ids: list[int], offsets: list[tuple[int, int]], size: int, overlap: int
) -> Generator[list[str], list[Any], list[Cut]]:
    """One document's cuts; yields the texts of the chunks it plans and is sent their encodings."""
    n = len(ids)
    if n <= size:
        return [Cut(0, n, 0, len(text) - 1, list(ids))]
    # A cut before id k is clean when id k starts a new character (a multi-byte character split over
    # byte-level ids shares one offset span); a word cut is a clean cut whose id starts with a space.
    clean = [k for k in range(1, n) if offsets[k - 1][1] <= offsets[k][0] < offsets[k][1]]
    words = [k for k in clean if text[offsets[k][0]] == " "]
    # Right after an id that is one space, a cut gives the same text as the word cut before that space.
    clean = [k for k in clean if text[offsets[k][0]] == " " or text[offsets[k - 1][0] : offsets[k][0]] != " "]

    def last_at_most(candidates: list[int], low: int, high: int) -> int | None:
        i = bisect.bisect_right(candidates, high) - 1
        return candidates[i] if i >= 0 and candidates[i] > low else None

    def char_start(k: int) -> int:
        # After a word cut the chunk's text starts after that space (the template adds its own).
        if k == 0:
            return 0
        start = offsets[k][0]
        return start if text[start] == " " else start - 1

    def char_end(k: int) -> int:
        return len(text) - 1 if k == n else offsets[k][0] - 1

    def first_end(start: int) -> int:
        high = start + size
        if high >= n:
            return n
        end = last_at_most(words, start + size // 2 - 1, high) or last_at_most(clean, start, high)
        if end is None:
            raise Qwen3RerankValueError(f"chunk_tokens={size} is too small to hold a single character; raise it")
        return end

    def following(start: int, end: int) -> int:
        if not overlap:
            return end
        return last_at_most(words, start, end - overlap) or last_at_most(clean, start, end - overlap) or end

    def encode(start: int, end: int) -> str:
        return " " + text[1 + char_start(start) : 1 + char_end(end)]

    cuts: list[Cut] = []
    start = 0
    while True:
        # Plan the rest as if every chunk re-tokenized within size (true at word cuts) and check them all
        # in one batched call; the first that does not fit is cut earlier and the rest planned again.
        spans = [(start, first_end(start))]
        while spans[-1][1] < n:
            spans.append((following(*spans[-1]), 0))
            spans[-1] = (spans[-1][0], first_end(spans[-1][0]))
        encoded = yield [encode(a, b) for a, b in spans]
        for (a, b), encoding in zip(spans, encoded, strict=True):
            if len(encoding.ids) > size:
                break
            cuts.append(Cut(a, b, char_start(a), char_end(b), encoding.ids))
        else:
            return cuts
        # Re-tokenizing across a non-word seam can take more ids than the slice: cut earlier.
        while True:
            shorter = last_at_most(clean, a, b - 1)
            if shorter is None:
                raise Qwen3RerankValueError(f"chunk_tokens={size} is too small to hold a single character; raise it")
            b = shorter
            chunk_ids = plain.encode(encode(a, b), add_special_tokens=False).ids
            if len(chunk_ids) <= size:
                break
        cuts.append(Cut(a, b, char_start(a), char_end(b), chunk_ids))
        start = following(a, b)


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """Every chunk prompt of a call, flat (they go to the backend together), and whose chunk each is."""

    prompts: list[list[int]]
    chunks: list[list[DocumentChunk]]

    def finish(self, scores: Sequence[float]) -> list[tuple[DocumentChunk, ...]]:
        """The chunks of each document, in text order, with their scores."""
        flat = iter(scores)
        return [
            tuple(
                DocumentChunk(c.index, c.token_start, c.token_end, c.char_start, c.char_end, next(flat))
                for c in doc_chunks
            )
            for doc_chunks in self.chunks
        ]


def plan_chunks(builder: PromptBuilder, triples: Sequence[tuple[str, str, str]], options: ChunkOptions) -> ChunkPlan:
    """Cut the documents of (instruction, query, document) triples and build every chunk's prompt.

    Raises DocumentTooLongError, before anything is scored, when a document needs more than max_chunks.
    """
    sizes = [builder.chunk_budget(instruction, query, options.chunk_tokens) for instruction, query, _ in triples]
    cuts: list[list[Any]] = [[] for _ in triples]
    # Documents are cut in one batched tokenizer call per chunk size (normally one size per call).
    by_size: dict[int, list[int]] = {}
    for position, size in enumerate(sizes):
        by_size.setdefault(size, []).append(position)
    for size, positions in by_size.items():
        cut = cut_documents(builder, [triples[i][2] for i in positions], size, options.chunk_overlap)
        for position, doc_cuts in zip(positions, cut, strict=True):
            cuts[position] = doc_cuts
    if options.max_chunks is not None:
        for position, doc_cuts in enumerate(cuts):
            if len(doc_cuts) > options.max_chunks:
                raise DocumentTooLongError(
                    f"document {position} needs {len(doc_cuts)} chunks of {sizes[position]} tokens, more than "
                    f"max_chunks={options.max_chunks}. Raise max_chunks (or pass None for no limit), raise "
                    "chunk_tokens or max_length, or use long_documents='truncate' to score only its beginning."
                )
    prompts: list[list[int]] = []
    chunks: list[list[DocumentChunk]] = []
    for (instruction, query, _), doc_cuts in zip(triples, cuts, strict=True):
        prompts.extend(builder.chunk_prompts(instruction, query, [c.ids for c in doc_cuts]))
        chunks.append(
            [DocumentChunk(i, c.token_start, c.token_end, c.char_start, c.char_end) for i, c in enumerate(doc_cuts)]
        )
    return ChunkPlan(prompts, chunks)
