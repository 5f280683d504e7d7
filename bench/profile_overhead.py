"""Where the host CPU time of a scoring call goes: cProfile over vLLM with the engine core in-process.

    VLLM_ENABLE_V1_MULTIPROCESSING=0 python bench/profile_overhead.py --model .cache/tiny --pairs 2048

With the tiny model the model's own compute is negligible, so the profile is the per-request cost of
the front end (request rendering, input processing), the scheduler and the output path, which is what
limits the 0.6B model on an H100 (see docs/benchmarks.md). Prints the top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workloads import SIZES, bulk


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from qwen3_rerank import Reranker

    reranker = Reranker(args.model)
    reranker.score_pairs(bulk("warm", SIZES, queries=4).pairs())
    pairs = bulk(0, SIZES, queries=args.queries).pairs()
    prompts = reranker.prompts.build_triples([(reranker.instruction, q, d) for q, d in pairs])
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    reranker.backend.score_prompts(prompts)
    profiler.disable()
    seconds = time.perf_counter() - start
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
    stats.print_stats(args.top)
    report = (
        f"{len(prompts)} prompts in {seconds:.2f} s ({seconds / len(prompts) * 1e3:.3f} ms a prompt)\n"
        + text.getvalue()
    )
    print(report)
    if args.out:
        args.out.write_text(report)
    reranker.close()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
