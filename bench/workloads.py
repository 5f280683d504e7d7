"""Seeded benchmark workloads: real-text-like queries and documents, the same bytes in every process.

Every contender runs in its own process and must see exactly the same pairs, so workloads are rebuilt
from string seeds (``random.Random(str)`` is stable across runs and Python versions). Each repetition
and each RAG call gets fresh documents: repeating a document would let vLLM's prefix cache skip whole
prompts and measure the cache instead of the model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from vocabulary import ADJECTIVES, CONTENT_WORDS, FUNCTION_WORDS, VERBS, WORDS

__all__ = ["Workload", "Sizes", "bulk", "chunk_documents", "long_documents", "rag_call", "SIZES", "QUICK_SIZES"]

# Common English runs about 1.1 tokens a word with punctuation; 185 words give the issue's ~285-token pair
# (81 fixed template+instruction+query tokens, ~204 document tokens).
_TOKENS_PER_WORD = 1.1


@dataclass(frozen=True, slots=True)
class Sizes:
    bulk_queries: int = 64
    bulk_docs_per_query: int = 32
    bulk_doc_words: int = 185
    rag_docs: int = 100
    rag_doc_words: int = 185
    long_queries: int = 10
    long_docs_per_query: int = 10
    long_min_tokens: int = 4000
    long_max_tokens: int = 7900
    # Documents longer than max_length, scored in long_documents="chunk" mode.
    chunk_queries: int = 8
    chunk_docs_per_query: int = 8
    chunk_min_tokens: int = 10_000
    chunk_max_tokens: int = 30_000
    #: ids per chunk; None: what fits under max_length (8192) beside the query.
    chunk_tokens: int | None = None
    chunk_overlap: int = 256


SIZES = Sizes()
QUICK_SIZES = Sizes(
    bulk_queries=4,
    bulk_docs_per_query=4,
    bulk_doc_words=40,
    rag_docs=8,
    rag_doc_words=40,
    long_queries=1,
    long_docs_per_query=2,
    long_min_tokens=300,
    long_max_tokens=500,
    chunk_queries=1,
    chunk_docs_per_query=3,
    chunk_min_tokens=400,
    chunk_max_tokens=900,
    chunk_tokens=128,
    chunk_overlap=16,
)


@dataclass(frozen=True, slots=True)
class Workload:
    """Queries, each with its own documents; pairs come query-major (all documents of query 0 first)."""

    name: str
    queries: tuple[str, ...]
    documents: tuple[tuple[str, ...], ...]

    def pairs(self) -> list[tuple[str, str]]:
        return [(query, doc) for query, docs in zip(self.queries, self.documents, strict=True) for doc in docs]

    @property
    def num_pairs(self) -> int:
        return sum(len(docs) for docs in self.documents)


def _sentence(rng: random.Random, length: int) -> str:
    # Function words are most of real text; mixing them in keeps token statistics close to prose.
    words = []
    for _ in range(length):
        pick = rng.random()
        if pick < 0.40:
            words.append(rng.choice(FUNCTION_WORDS))
        elif pick < 0.70:
            words.append(rng.choice(CONTENT_WORDS))
        elif pick < 0.85:
            words.append(rng.choice(VERBS))
        else:
            words.append(rng.choice(ADJECTIVES))
    if length > 8 and rng.random() < 0.5:
        cut = rng.randrange(3, length - 3)
        words[cut] += ","
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def document(rng: random.Random, words: int) -> str:
    sentences = []
    left = words
    while left > 0:
        length = min(left, rng.randint(6, 18))
        sentences.append(_sentence(rng, length))
        left -= length
    return " ".join(sentences)


def query(rng: random.Random) -> str:
    opener = rng.choice(("how does", "why is", "what makes", "where can", "which", "when do", "what is"))
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 8)))
    return f"{opener} {body}?"


def _workload(name: str, seed: str, queries: int, docs_per_query: int, word_counts: Sequence[int]) -> Workload:
    rng = random.Random(seed)
    qs = tuple(query(rng) for _ in range(queries))
    counts = iter(word_counts)
    docs = tuple(tuple(document(rng, next(counts)) for _ in range(docs_per_query)) for _ in qs)
    return Workload(name, qs, docs)


def bulk(rep: int | str, sizes: Sizes = SIZES, *, queries: int | None = None) -> Workload:
    """64 queries x 32 documents of ~185 words (~285 tokens a pair); ``rep`` picks fresh documents."""
    n_queries = queries or sizes.bulk_queries
    count = n_queries * sizes.bulk_docs_per_query
    return _workload(f"bulk-{rep}", f"bulk-{rep}", n_queries, sizes.bulk_docs_per_query, [sizes.bulk_doc_words] * count)


def rag_call(index: int | str, sizes: Sizes = SIZES) -> tuple[str, list[str]]:
    """One query and its 100 retrieved documents; every index is a different query and document set."""
    work = _workload(f"rag-{index}", f"rag-{index}", 1, sizes.rag_docs, [sizes.rag_doc_words] * sizes.rag_docs)
    return work.queries[0], list(work.documents[0])


def long_documents(sizes: Sizes = SIZES, seed: str = "long") -> Workload:
    """10 queries x 10 documents whose lengths spread evenly over 4k-8k tokens (fits max_length 8192)."""
    n = sizes.long_queries * sizes.long_docs_per_query
    rng = random.Random(f"{seed}-lengths")
    span = sizes.long_max_tokens - sizes.long_min_tokens
    targets = [sizes.long_min_tokens + (span * i) // max(1, n - 1) for i in range(n)]
    rng.shuffle(targets)
    words = [int(t / _TOKENS_PER_WORD) for t in targets]
    return _workload(seed, seed, sizes.long_queries, sizes.long_docs_per_query, words)


def chunk_documents(sizes: Sizes = SIZES, seed: str = "chunk") -> Workload:
    """8 queries x 8 documents of 10k-30k tokens: longer than max_length, so chunk mode has 2-4 chunks each."""
    n = sizes.chunk_queries * sizes.chunk_docs_per_query
    rng = random.Random(f"{seed}-lengths")
    span = sizes.chunk_max_tokens - sizes.chunk_min_tokens
    targets = [sizes.chunk_min_tokens + (span * i) // max(1, n - 1) for i in range(n)]
    rng.shuffle(targets)
    words = [int(t / _TOKENS_PER_WORD) for t in targets]
    return _workload(seed, seed, sizes.chunk_queries, sizes.chunk_docs_per_query, words)
