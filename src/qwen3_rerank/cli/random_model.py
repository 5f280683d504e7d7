"""``qwen3-rerank random-model``: write a random-weight checkpoint for offline tests and benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from ..random_checkpoint import SHAPES

    parser = sub.add_parser(
        "random-model",
        help="write a random-weight Qwen3-Reranker-shaped checkpoint (offline tests, benchmarks)",
        description="Write a seeded random Qwen3ForCausalLM checkpoint with the real Qwen3 tokenizer. "
        "Its scores are meaningless; its prompts, shapes and speed are the real model's.",
    )
    parser.add_argument("destination", type=Path)
    parser.add_argument("--tokenizer", type=Path, required=True, help="directory with the Qwen3 tokenizer files")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cuda initialises large shapes faster")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..random_checkpoint import write_random_checkpoint

    path = write_random_checkpoint(
        args.destination, args.tokenizer, shape=args.shape, dtype=args.dtype, seed=args.seed, device=args.device
    )
    print(path)
    return 0
