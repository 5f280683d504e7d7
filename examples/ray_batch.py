"""Score a file of (query, document) pairs on Ray, resumably; or measure actor scaling on made-up pairs.

    python examples/ray_batch.py pairs.parquet scores.parquet --model Qwen/Qwen3-Reranker-0.6B --actors 4
    python examples/ray_batch.py --synthetic 20000 /tmp/pairs.parquet /tmp/scores.parquet \\
        --model .cache/tiny --backend transformers --actors 2      # CPU scaling check on a tiny model

Kill it at any time and run the same command again: the rows already written are kept and not scored
twice. The command line equivalent is ``qwen3-rerank batch`` (``--help`` lists its options).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Generator, Iterator, Sequence

from qwen3_rerank import BACKEND_NAMES, RerankerSettings
from qwen3_rerank.files import RayRunner, add_ranks, score_file
from qwen3_rerank.files.rows import Block

TEXT = (
    "cats purr dogs bark green tea is steeped at eighty degrees Paris is the capital of France the tower "
    "BM25 ranks documents by term frequency"
)


def write_synthetic_pairs(path: str, pairs: int, docs_per_query: int = 100, seed: int = 0) -> None:
    """``pairs`` rows of random words: queries of 4-10 words, documents of 20-120 (about 30-170 tokens)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    words = TEXT.split()
    rows = []
    for i in range(pairs):
        q = i // docs_per_query
        if i % docs_per_query == 0:
            query = " ".join(rng.choices(words, k=rng.randint(4, 10)))
        rows.append(
            {
                "query_id": f"q{q}",
                "doc_id": f"d{i}",
                "query": query,
                "document": " ".join(rng.choices(words, k=rng.randint(20, 120))),
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), path)


class TimedRunner(RayRunner):
    """The Ray runner, noting when each block's scores came back (for the steady-state rate)."""

    finished: list[tuple[float, int]]

    def score_blocks(self, blocks: Iterator[Block]) -> Generator[tuple[Block, Sequence[float]], None, None]:
        self.finished = []
        for block, scores in super().score_blocks(blocks):
            self.finished.append((time.perf_counter(), len(scores)))
            yield block, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B")
    parser.add_argument("--backend", default="vllm", choices=BACKEND_NAMES)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--actors", type=int, default=None, help="default: one per GPU, else 1")
    parser.add_argument("--cpus-per-actor", type=float, default=1)
    parser.add_argument("--chunk-size", type=int, default=4096, help="rows per block")
    parser.add_argument("--rank", action="store_true")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--synthetic", type=int, default=0, metavar="N", help="first write N random pairs to INPUT")
    parser.add_argument("--verify", action="store_true", help="check the output against in-process scores")
    args = parser.parse_args()

    if args.synthetic:
        write_synthetic_pairs(args.input, args.synthetic)
    settings = RerankerSettings.create(
        args.model, backend=args.backend, engine_options={"dtype": args.dtype} if args.dtype else None
    )
    runner = TimedRunner(settings, actors=args.actors, cpus_per_actor=args.cpus_per_actor, ray_address=args.ray_address)
    result = score_file(runner, args.input, args.output, chunk_size=args.chunk_size, show_progress=True)
    if args.rank:
        add_ranks(args.output)
    rate = result.rows_scored / result.seconds if result.seconds else 0.0
    print(
        f"scored {result.rows_scored} rows (resumed after {result.rows_resumed}) on {runner.actors_started} "
        f"actor(s) in {result.seconds:.1f} s = {rate:.1f} pairs/s: {result.output}"
    )
    finished = getattr(runner, "finished", [])
    if len(finished) > 2:
        # Throughput once every actor is up: from the first finished block to the last.
        span = finished[-1][0] - finished[0][0]
        print(f"steady state: {sum(n for _, n in finished[1:]) / span:.1f} pairs/s over {len(finished) - 1} blocks")
    if args.verify:
        verify(args, str(result.output))


def verify(args: argparse.Namespace, output: str) -> None:
    """Every input pair once in the output, in input order, with the score an in-process Reranker gives it."""
    import pyarrow.parquet as pq

    from qwen3_rerank import Reranker

    pairs = pq.read_table(args.input).to_pylist()
    rows = pq.read_table(output).to_pylist()
    assert [(r["query_id"], r["doc_id"]) for r in rows] == [(p["query_id"], p["doc_id"]) for p in pairs]
    options = {"dtype": args.dtype} if args.dtype else None
    with Reranker(args.model, backend=args.backend, engine_options=options) as reranker:
        queries = [(p["instruction"], p["query"]) if p.get("instruction") else p["query"] for p in pairs]
        want = reranker.score_pairs(list(zip(queries, [p["document"] for p in pairs], strict=True)))
    worst = max(abs(row["score"] - s) for row, s in zip(rows, want, strict=True))
    print(f"verified: {len(pairs)} pairs, each once; largest difference from in-process scores {worst:.2e}")
    assert worst <= 1e-5


if __name__ == "__main__":
    main()
