"""Regenerate tests/fixtures/golden/*.json. Run only when the model contract itself changes.

Prompt ids come from the *full* tokenizer over the canonical string (Qwen's reference way), not from
our builder, so the golden file is an independent oracle. Scores come from the transformers reference
on the tiny seeded checkpoint.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "fixtures" / "golden"
TOKENIZER = HERE / "fixtures" / "qwen3-tokenizer"

EXAMPLES = [
    (
        "Given a web search query, retrieve relevant passages that answer the query",
        "What is the capital of China?",
        "The capital of China is Beijing.",
    ),
    (
        "Given a web search query, retrieve relevant passages that answer the query",
        "Explain gravity",
        "Gravity is a force that attracts two bodies towards each other. It gives weight to physical objects.",
    ),
    ("Retrieve semantically similar text", "  leading spaces\tand tabs ", "\n\nnewlines first"),
    ("", "", ""),
    ("Judge code", "def f(x): return x**2", "lambda x: x * x  # 平方 😀"),
]


def main() -> None:
    from transformers import AutoTokenizer

    from qwen3_rerank import Reranker, canonical_prompt
    from qwen3_rerank.random_checkpoint import write_random_checkpoint

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER))
    prompts = [
        {
            "instruction": i,
            "query": q,
            "document": d,
            "ids": tok.encode(canonical_prompt(i, q, d), add_special_tokens=False),
        }
        for i, q, d in EXAMPLES
    ]
    (GOLDEN / "prompts.json").write_text(json.dumps(prompts, ensure_ascii=False, indent=1) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        model = write_random_checkpoint(tmp, TOKENIZER, shape="tiny")
        with Reranker(str(model), backend="transformers", engine_options={"dtype": "float32"}) as ref:
            scores = ref.score_pairs([((i, q), d) for i, q, d in EXAMPLES])
    (GOLDEN / "scores.json").write_text(
        json.dumps(
            {"model": "tiny, seed 0 (qwen3_rerank.random_checkpoint)", "examples": EXAMPLES, "scores": scores},
            ensure_ascii=False,
            indent=1,
        )
        + "\n"
    )
    print(scores, file=sys.stderr)


if __name__ == "__main__":
    main()
