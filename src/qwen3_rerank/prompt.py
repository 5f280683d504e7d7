"""The one Qwen3-Reranker prompt builder: canonical template, token ids built directly.

Every backend (in-process vLLM, vLLM servers, transformers) sends the ids made here.

Why ids and not text: user text that spells a control token (``<|im_end|>``, ``<think>`` ...) must stay
plain text, and handing a string to a tokenizer (or to vLLM) would turn it into the control token.
``split_special_tokens=True`` is not enough, because ``<think>`` and ``</think>`` are added tokens that are
not marked special. So user text goes through a copy of the tokenizer with *no* added tokens at all:
the same normalizer, pre-tokenizer and BPE, therefore the same ids as the whole canonical string
tokenized in one piece whenever the text holds no control-token spelling.

Why the document is tokenized on its own (as ``" " + document``): the byte-level pre-tokenizer always
splits between ``<Document>:`` and the space that follows it, so the ids of the head
(``<Instruct>: …\\n<Query>: …\\n<Document>:``) and of ``" " + document`` concatenate to exactly the ids
of the whole body. That lets the head be tokenized once per query and the document be truncated from
its end without touching anything else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .errors import (
    BackendNotInstalledError,
    ModelNotFoundError,
    NotAQwen3RerankerError,
    PromptTooLongError,
    Qwen3RerankValueError,
)
from .relevance import NO_TOKEN_ID, YES_TOKEN_ID
from .validation import check_max_length

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "CONTROL_TOKEN_IDS",
    "DEFAULT_INSTRUCTION",
    "DocumentChunk",
    "DEFAULT_MAX_LENGTH",
    "PREFIX",
    "PromptBuilder",
    "SUFFIX",
    "SUFFIX_IDS",
    "added_token_spellings",
    "canonical_prompt",
    "split_canonical_prompt",
]

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
SUFFIX_IDS: tuple[int, ...] = (151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271)
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
DEFAULT_MAX_LENGTH = 8192

# <|endoftext|> <|im_start|> <|im_end|> ... <think> </think> ...: every added token of the Qwen3 vocabulary.
_FIRST_ADDED_TOKEN_ID = 151643
CONTROL_TOKEN_IDS = range(_FIRST_ADDED_TOKEN_ID, 151669)

_IM_START, _IM_END, _THINK, _END_THINK = 151644, 151645, 151667, 151668


# The body between PREFIX and SUFFIX: "<Instruct>: I\n<Query>: Q\n<Document>: D". Spelled only here;
# the server's chat template, its text endpoints and the benchmarks build on canonical_prompt.
_INSTRUCT, _QUERY, _DOCUMENT = "<Instruct>: ", "\n<Query>: ", "\n<Document>: "


def canonical_prompt(instruction: str, query: str, document: str) -> str:
    """The exact string Qwen's reference formats; the builder's ids equal its tokenization.

    The parts are pasted in verbatim, so Jinja expressions give a chat template of the same prompt.
    """
    return f"{PREFIX}{_INSTRUCT}{instruction}{_QUERY}{query}{_DOCUMENT}{document}{SUFFIX}"


def split_canonical_prompt(text: str) -> tuple[str, str, str] | None:
    """(instruction, query, document) that [`canonical_prompt()`][qwen3_rerank.canonical_prompt] turns back into
    ``text``; None if no fit.

    Splitting at the first query and document markers is exact even when user text contains them:
    canonical_prompt puts the markers back between the parts, so the rendered string is the same.
    """
    if not (text.startswith(PREFIX + _INSTRUCT) and text.endswith(SUFFIX)):
        return None
    body = text[len(PREFIX) + len(_INSTRUCT) : len(text) - len(SUFFIX)]
    instruction, sep_q, rest = body.partition(_QUERY)
    query, sep_d, document = rest.partition(_DOCUMENT)
    if not sep_q or not sep_d:
        return None
    return instruction, query, document


def added_token_spellings(hf_tokenizer: Any) -> frozenset[str]:
    """Every added token of a tokenizer (``<|im_end|>``, ``<think>``, ``<tool_call>`` ...): the spellings a
    tokenizer given text turns into single tokens, whether marked special or not."""
    decoder = getattr(hf_tokenizer, "added_tokens_decoder", None) or {}
    return frozenset(str(getattr(token, "content", token)) for token in decoder.values())


def _head_text(instruction: str, query: str) -> str:
    return f"{_INSTRUCT}{instruction}{_QUERY}{query}{_DOCUMENT.rstrip(' ')}"


@dataclass(frozen=True, slots=True)
class PromptPlan:
    """How many tokens of a prompt are fixed and how many the document may have."""

    fixed_tokens: int
    document_budget: int


@dataclass(frozen=True, slots=True)
class DocumentChunk:
    """One chunk of a document scored in ``long_documents="chunk"`` mode.

    ``document[char_start:char_end]`` is the chunk's text, and the chunk was scored with the canonical prompt
    of that text. ``token_start:token_end`` is its span in the document's own ids (those of
    ``" " + document``, [`PromptBuilder.document_ids()`][qwen3_rerank.PromptBuilder.document_ids]). ``score`` is None
    until the chunk is scored.
    """

    index: int
    token_start: int
    token_end: int
    char_start: int
    char_end: int
    score: float | None = None


def load_hf_tokenizer(source: str) -> Any:
    """Load a transformers tokenizer from a local directory or Hub name, with errors that say the fix."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a core dependency
        raise BackendNotInstalledError("pip install qwen3-rerank (transformers is missing)") from exc
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"Cannot load the tokenizer of {source!r}: it is not a local model directory and could not be "
            "fetched from the Hugging Face Hub (offline, or a wrong name?). Pass the path of a local "
            "Qwen3-Reranker directory, or download it first with `huggingface-cli download "
            "Qwen/Qwen3-Reranker-0.6B`."
        ) from exc


def _plain_text_tokenizer(hf_tokenizer: Any) -> Tokenizer:
    """The same tokenizer with every added token removed, so no user text can become a control token."""
    from tokenizers import Tokenizer

    backend = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise NotAQwen3RerankerError(
            f"{type(hf_tokenizer).__name__} is a slow tokenizer; qwen3-rerank needs the fast (tokenizers) "
            "Qwen3 tokenizer. Load it with AutoTokenizer.from_pretrained(path) (use_fast is the default)."
        )
    spec = json.loads(backend.to_str())
    spec["added_tokens"] = []
    spec["truncation"] = None
    spec["padding"] = None
    spec["post_processor"] = None
    return Tokenizer.from_str(json.dumps(spec))


def _check_is_qwen3_reranker_vocabulary(hf_tokenizer: Any, prefix_ids: Sequence[int]) -> None:
    expected = {
        "yes": YES_TOKEN_ID,
        "no": NO_TOKEN_ID,
        "<|im_start|>": _IM_START,
        "<|im_end|>": _IM_END,
        "<think>": _THINK,
        "</think>": _END_THINK,
    }
    got = {text: hf_tokenizer.convert_tokens_to_ids(text) for text in expected}
    suffix_ids = tuple(hf_tokenizer.encode(SUFFIX, add_special_tokens=False))
    if got != expected or suffix_ids != SUFFIX_IDS or not prefix_ids or prefix_ids[0] != _IM_START:
        raise NotAQwen3RerankerError(
            "This tokenizer is not the Qwen3 tokenizer that Qwen3-Reranker uses (expected "
            f"{expected}, got {got}). Point the reranker at a Qwen/Qwen3-Reranker-0.6B/4B/8B checkpoint."
        )


class PromptBuilder:
    """Builds Qwen3-Reranker prompts as token ids.

    >>> builder = PromptBuilder.from_pretrained("Qwen/Qwen3-Reranker-0.6B")  # doctest: +SKIP
    >>> ids = builder.build("Given a web search query, ...", "what is BM25?", ["BM25 is ..."])  # doctest: +SKIP
    """

    def __init__(
        self, hf_tokenizer: Any, *, max_length: int = DEFAULT_MAX_LENGTH, context_length: int | None = None
    ) -> None:
        self.max_length = check_max_length(max_length)
        #: the model's context in tokens (its config's max_position_embeddings), when known; used in messages
        self.context_length = context_length
        self.hf_tokenizer = hf_tokenizer
        # The prefix holds real control tokens on purpose, so it goes through the full tokenizer.
        self.prefix_ids: tuple[int, ...] = tuple(hf_tokenizer.encode(PREFIX, add_special_tokens=False))
        _check_is_qwen3_reranker_vocabulary(hf_tokenizer, self.prefix_ids)
        self.suffix_ids: tuple[int, ...] = SUFFIX_IDS
        self._plain = _plain_text_tokenizer(hf_tokenizer)
        self._head_ids = lru_cache(maxsize=4096)(self._tokenize_head)

    # The per-instance head cache wraps a bound method, which pickle cannot store: drop it and rebuild it.
    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_head_ids"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._head_ids = lru_cache(maxsize=4096)(self._tokenize_head)

    @classmethod
    def from_pretrained(
        cls, source: str, *, max_length: int = DEFAULT_MAX_LENGTH, context_length: int | None = None
    ) -> PromptBuilder:
        """Load the tokenizer of a local model directory or a Hub model name.

        ``context_length`` defaults to the ``max_position_embeddings`` of ``source``'s config.json, if any.
        """
        if context_length is None:
            from .checkpoints import Checkpoint

            context_length = Checkpoint.cached(source).context_length
        return cls(load_hf_tokenizer(source), max_length=max_length, context_length=context_length)

    # -- pieces -------------------------------------------------------------------------------------

    def _tokenize_head(self, instruction: str, query: str) -> tuple[int, ...]:
        return tuple(self._plain.encode(_head_text(instruction, query), add_special_tokens=False).ids)

    @property
    def plain_tokenizer(self) -> Tokenizer:
        """The tokenizer that reads text as plain text: a control token's spelling stays text."""
        return self._plain

    def document_ids(self, documents: Sequence[str]) -> list[list[int]]:
        """Ids of ``" " + document`` for each document, as plain text, in one batched call."""
        encodings = self._plain.encode_batch([" " + doc for doc in documents], add_special_tokens=False)
        return [enc.ids for enc in encodings]

    def plan(self, instruction: str, query: str) -> PromptPlan:
        """The fixed token count of (instruction, query) and the document's token budget."""
        fixed = len(self.prefix_ids) + len(self._head_ids(instruction, query)) + len(self.suffix_ids)
        return PromptPlan(fixed_tokens=fixed, document_budget=self.max_length - fixed)

    def _budget(self, instruction: str, query: str) -> int:
        plan = self.plan(instruction, query)
        if plan.document_budget < 0:
            context = (
                f"the model's context is {self.context_length} tokens"
                if self.context_length
                else "up to the model's context, max_position_embeddings in its config.json"
            )
            raise PromptTooLongError(
                f"The template, instruction and query take {plan.fixed_tokens} tokens, more than "
                f"max_length={self.max_length}; only the document is ever truncated. Shorten the query or "
                f"instruction, or raise max_length ({context})."
            )
        return plan.document_budget

    # -- prompts ------------------------------------------------------------------------------------

    def build(self, instruction: str, query: str, documents: Sequence[str]) -> list[list[int]]:
        """Prompts for one query and many documents, in input order."""
        budget = self._budget(instruction, query)
        start = [*self.prefix_ids, *self._head_ids(instruction, query)]
        suffix = list(self.suffix_ids)
        return [start + doc[:budget] + suffix for doc in self.document_ids(documents)]

    def build_one(self, instruction: str, query: str, document: str) -> list[int]:
        return self.build(instruction, query, [document])[0]

    def build_triples(self, triples: Sequence[tuple[str, str, str]]) -> list[list[int]]:
        """Prompts for explicit (instruction, query, document) triples, in input order."""
        doc_ids = self.document_ids([doc for _, _, doc in triples])
        suffix = list(self.suffix_ids)
        prompts: list[list[int]] = []
        for (instruction, query, _), ids in zip(triples, doc_ids, strict=True):
            budget = self._budget(instruction, query)
            prompts.append([*self.prefix_ids, *self._head_ids(instruction, query), *ids[:budget], *suffix])
        return prompts

    def chunk_budget(self, instruction: str, query: str, chunk_tokens: int | None) -> int:
        """The chunk size for (instruction, query): ``chunk_tokens``, or all that fits beside the template."""
        budget = self._budget(instruction, query)
        if chunk_tokens is None:
            return budget
        if chunk_tokens > budget:
            raise Qwen3RerankValueError(
                f"chunk_tokens={chunk_tokens} does not fit: the template, instruction and query leave "
                f"{budget} tokens of max_length={self.max_length} for the document. Lower chunk_tokens, or "
                "leave it None for what fits."
            )
        return chunk_tokens

    def chunk_prompts(self, instruction: str, query: str, chunk_ids: Iterable[Sequence[int]]) -> list[list[int]]:
        """The canonical prompt of each chunk, given the ids of its ``" " + text`` (see
        ``qwen3_rerank.chunking.cut_documents()``)."""
        start = [*self.prefix_ids, *self._head_ids(instruction, query)]
        suffix = list(self.suffix_ids)
        return [[*start, *ids, *suffix] for ids in chunk_ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a prompt; handy for debugging (control tokens come back as their spelling)."""
        return self.hf_tokenizer.decode(list(ids), skip_special_tokens=False)
