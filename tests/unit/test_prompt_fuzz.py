"""Fuzzing the prompt builder with the real Qwen3 tokenizer: a checked-in corpus plus generated inputs.

For any (instruction, query, document) and max_length the builder must give:
- exactly the template's control tokens, in their places, and no other id of an added token;
- the 9-token suffix last; at most max_length ids (or PromptTooLongError when the template, instruction
  and query alone do not fit); a cut prompt equal to the uncut one up to the cut (only the document's end
  is dropped);
- without a control-token spelling in the text: the ids of the whole canonical string tokenized at once;
- ids that decode to the canonical string (NFC-normalised, as the tokenizer normalises) when uncut;
- the same ids alone, in a batch and as triples.

Corpus: tests/fixtures/fuzz-corpus/*, each file ``instruction \\x1f query \\x1f document`` in UTF-8 (fewer
parts: default instruction and query); invalid UTF-8 is decoded with replacement characters; max_length is
picked from the input's CRC. CI replays the corpus and runs a few thousand generated cases; the long run:
``HYPOTHESIS_PROFILE=long pytest tests/unit/test_prompt_fuzz.py -p no:cacheprovider --hypothesis-show-statistics``.
"""

from __future__ import annotations

import unicodedata
import zlib
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from paths import FIXTURES
from strategies import CONTROL_TEXTS, prop_settings

from qwen3_rerank import DEFAULT_INSTRUCTION, PromptBuilder, PromptTooLongError, canonical_prompt
from qwen3_rerank.prompt import CONTROL_TOKEN_IDS, SUFFIX_IDS

CORPUS_DIR = FIXTURES / "fuzz-corpus"
CORPUS = sorted(CORPUS_DIR.iterdir())
MAX_LENGTHS = (56, 72, 88, 104, 128, 256, 1024, 8192)
UNCUT = 1_000_000


@pytest.fixture(scope="module")
def builders(prompt_builder) -> dict[int, PromptBuilder]:
    tokenizer = prompt_builder.hf_tokenizer
    return {n: PromptBuilder(tokenizer, max_length=n) for n in (*MAX_LENGTHS, UNCUT)}


@pytest.fixture(scope="module")
def spellings(prompt_builder) -> list[str]:
    return [prompt_builder.hf_tokenizer.convert_ids_to_tokens(i) for i in CONTROL_TOKEN_IDS]


def split_input(data: bytes) -> tuple[str, str, str, int]:
    """Corpus bytes -> (instruction, query, document, max_length)."""
    parts = data.decode("utf-8", errors="replace").split("\x1f")
    instruction = parts[0] if len(parts) >= 3 else DEFAULT_INSTRUCTION
    query = parts[-2] if len(parts) >= 2 else "a query"
    document = parts[-1] if len(parts) <= 3 else "\x1f".join(parts[2:])
    return instruction, query, document, MAX_LENGTHS[zlib.crc32(data) % len(MAX_LENGTHS)]


def check_prompt(builders, spellings, instruction: str, query: str, document: str, max_length: int) -> str:
    """All the builder's properties for one input; returns what happened (for the statistics)."""
    whole = builders[UNCUT]
    full = whole.build_one(instruction, query, document)
    assert full == whole.build_one(instruction, query, document)  # deterministic
    assert all(isinstance(i, int) and 0 <= i < 151669 for i in full)
    control = [(pos, tok) for pos, tok in enumerate(full) if tok in CONTROL_TOKEN_IDS]
    prefix = [(pos, tok) for pos, tok in enumerate(whole.prefix_ids) if tok in CONTROL_TOKEN_IDS]
    suffix = [(len(full) - 9 + pos, tok) for pos, tok in enumerate(SUFFIX_IDS) if tok in CONTROL_TOKEN_IDS]
    assert control == prefix + suffix
    assert tuple(full[-9:]) == SUFFIX_IDS
    canonical = canonical_prompt(instruction, query, document)
    assert whole.decode(full) == unicodedata.normalize("NFC", canonical)
    if not any(s in part for s in spellings for part in (instruction, query, document)):
        assert full == whole.hf_tokenizer.encode(canonical, add_special_tokens=False)

    cut_builder = builders[max_length]
    fixed = cut_builder.plan(instruction, query).fixed_tokens
    if fixed > max_length:
        with pytest.raises(PromptTooLongError):
            cut_builder.build_one(instruction, query, document)
        return "instruction+query too long"
    cut = cut_builder.build_one(instruction, query, document)
    assert len(cut) <= max_length
    assert tuple(cut[-9:]) == SUFFIX_IDS
    keep = len(cut) - 9
    assert cut[:keep] == full[:keep]
    if len(full) <= max_length:
        assert cut == full
        return "fits"
    assert len(cut) == max_length
    return "document cut"


# -- the checked-in corpus ---------------------------------------------------------------------------


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus(builders, spellings, path: Path) -> None:
    data = path.read_bytes()
    instruction, query, document, max_length = split_input(data)
    check_prompt(builders, spellings, instruction, query, document, max_length)
    for n in MAX_LENGTHS:  # every corpus entry at every length, too
        check_prompt(builders, spellings, instruction, query, document, n)


def test_batches_and_triples_equal_one_at_a_time(builders) -> None:
    inputs = [split_input(p.read_bytes()) for p in CORPUS]
    builder = builders[256]
    for instruction, query, _, _ in inputs[:8]:
        docs = [doc for _, _, doc, _ in inputs]
        try:
            batch = builder.build(instruction, query, docs)
        except PromptTooLongError:
            continue
        assert batch == [builder.build_one(instruction, query, d) for d in docs]
        assert builder.build_triples([(instruction, query, d) for d in docs]) == batch


# -- generated -------------------------------------------------------------------------------------

TRICKY = [
    *" \n\r\t:<>|/_'sltmdve0123456789.,!?-",
    "  ",
    "\n\n",
    "'s",
    "'ll",
    "<|",
    "|>",
    "im_",
    "end",
    "think",
    "\u200b",
    "\u200d",
    "\u0301",
    "é",
    "日",
    "😀",
    "👩\u200d👧",
    "\x00",
    "\u3000",
    "\ufeff",
    "ﬁ",
]
tricky_text = st.lists(st.sampled_from(TRICKY), max_size=40).map("".join)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
spliced = st.tuples(any_text, st.sampled_from(CONTROL_TEXTS), tricky_text).map("".join)
texts = st.one_of(tricky_text, any_text, spliced, st.sampled_from(["", " ", "\n"]))
long_texts = st.one_of(texts, st.builds(lambda t, n: t * n, texts, st.integers(2, 60)))


@prop_settings(1500)
@given(instruction=texts, query=texts, document=long_texts, max_length=st.sampled_from(MAX_LENGTHS))
def test_generated_text(builders, spellings, instruction, query, document, max_length) -> None:
    event(check_prompt(builders, spellings, instruction, query, document, max_length))


@prop_settings(1000)
@given(data=st.binary(max_size=300))
def test_generated_bytes(builders, spellings, data) -> None:
    event(check_prompt(builders, spellings, *split_input(data)))


@prop_settings(300)
@given(seed=st.sampled_from(CORPUS), cut=st.integers(0, 200), insert=st.binary(max_size=8))
def test_mutated_corpus(builders, spellings, seed: Path, cut: int, insert: bytes) -> None:
    """Corpus entries with bytes spliced in at a random point (a poor man's mutational fuzzer)."""
    data = seed.read_bytes()
    at = cut % (len(data) + 1)
    event(check_prompt(builders, spellings, *split_input(data[:at] + insert + data[at:])))
