"""Score, rank and score pairs with qwen3-rerank, sync and async.

python examples/rerank_basics.py                                # Qwen/Qwen3-Reranker-0.6B, vLLM
python examples/rerank_basics.py --model .cache/tiny-model      # a local (or random stand-in) model
python examples/rerank_basics.py --backend transformers         # without vLLM
"""

from __future__ import annotations

import argparse
import asyncio

from qwen3_rerank import Reranker

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower is in Paris.",
    "Photosynthesis converts light into chemical energy.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B")
    parser.add_argument("--backend", default="vllm", choices=("vllm", "transformers"))
    args = parser.parse_args()

    with Reranker(args.model, backend=args.backend) as reranker:
        print("scores, in input order:", [round(s, 4) for s in reranker.score(QUERY, DOCUMENTS)])

        print("best two:")
        for hit in reranker.rank(QUERY, DOCUMENTS, top_n=2):
            print(f"  #{hit.index}  {hit.score:.4f}  {hit.document}")

        pairs = [
            (QUERY, DOCUMENTS[0]),
            # a query with its own instruction
            (("Given a question, retrieve passages about landmarks", "famous tower"), DOCUMENTS[2]),
        ]
        print("pair scores:", [round(s, 4) for s in reranker.compute_scores(pairs)])

        async def concurrent_queries() -> list[list[float]]:
            # async calls never block the event loop; the engine is shared safely
            return await asyncio.gather(*(reranker.ascore(q, DOCUMENTS) for q in ("Paris", "Germany", "plants")))

        for query, scores in zip(("Paris", "Germany", "plants"), asyncio.run(concurrent_queries()), strict=True):
            print(f"async {query!r}:", [round(s, 4) for s in scores])


if __name__ == "__main__":
    main()
