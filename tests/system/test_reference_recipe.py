"""An independent reference: Qwen's published transformers recipe, written here from the model card.

The Qwen3-Reranker model card scores a pair by formatting it into one string, tokenizing that string
with the tokenizer, running AutoModelForCausalLM, taking the full LM-head logits at the last position
and the probability of "yes" from a log_softmax over the ("no", "yes") logits. Nothing here comes from
qwen3_rerank (not its prompt builder, not its score function), so a bug shared by our prompt builder
and our transformers backend (which made the golden scores) cannot hide. Every backend is held to it.

Texts are plain: the recipe tokenizes the whole string, so a document spelling a control token would
become that token there and plain text here, on purpose (see docs/concepts/prompt-and-score.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

TOL = 1e-5

# The model card's strings, verbatim.
PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
TASK = "Given a web search query, retrieve relevant passages that answer the query"

PAIRS = [
    (TASK, "What is the capital of China?", "The capital of China is Beijing."),
    (TASK, "Explain gravity", "Gravity is a force that attracts two bodies towards each other."),
    ("Find recipes for the dish", "green tea", "Steep green tea at 80 C for two minutes."),
    (TASK, "猫はなぜ喉を鳴らすの?", "猫は満足しているときに喉を鳴らします。"),
    (TASK, "empty document", ""),
    ("", "no instruction at all", "  leading spaces and a\nnewline\tand a tab"),
]


def format_instruction(instruction: str, query: str, doc: str) -> str:
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"


@pytest.fixture(scope="module")
def recipe_scores(tiny_model_dir: Path) -> list[float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, torch_dtype=torch.float32).eval()
    token_false_id = tokenizer.convert_tokens_to_ids("no")
    token_true_id = tokenizer.convert_tokens_to_ids("yes")
    scores = []
    with torch.no_grad():
        for pair in PAIRS:  # one at a time: no padding to get right
            ids = tokenizer.encode(PREFIX + format_instruction(*pair) + SUFFIX, add_special_tokens=False)
            logits = model(input_ids=torch.tensor([ids])).logits[:, -1, :]
            pair_logits = torch.stack([logits[:, token_false_id], logits[:, token_true_id]], dim=1)
            scores.append(torch.nn.functional.log_softmax(pair_logits, dim=1)[:, 1].exp().item())
    return scores


def _ours(reranker) -> list[float]:
    return reranker.score_pairs([((instruction, query), doc) for instruction, query, doc in PAIRS])


def test_the_recipe_is_not_degenerate(recipe_scores) -> None:
    # Random weights give scores near 0.5; they must still differ, or the comparison below proves little.
    assert len(set(recipe_scores)) == len(PAIRS)


def test_transformers_backend_matches_the_model_card_recipe(reference_reranker, recipe_scores) -> None:
    assert _ours(reference_reranker) == pytest.approx(recipe_scores, abs=TOL)


@pytest.mark.vllm
def test_vllm_backend_matches_the_model_card_recipe(vllm_reranker, recipe_scores) -> None:
    assert _ours(vllm_reranker) == pytest.approx(recipe_scores, abs=TOL)
