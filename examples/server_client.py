"""Rerank through running vLLM servers: the same Reranker API, one argument changed.

Start one server per GPU (docs/deployment.md has the exact command), then:

    python examples/server_client.py --url http://10.0.0.5:8000 --url http://10.0.0.6:8000
    python examples/server_client.py --url http://127.0.0.1:8000 --model /path/to/model   # local tokenizer

--model names the tokenizer: prompts are built here, as token ids, and sent to /classify, so the scores
equal in-process ones.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from qwen3_rerank import Reranker

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Paris is the capital and most populous city of France.",
    "Berlin is the capital of Germany.",
    "The Eiffel Tower is in Paris.",
    "Photosynthesis converts light into chemical energy.",
]


async def many_clients(reranker: Reranker, clients: int) -> list[float]:
    """Concurrent callers share one connection pool and one bound on requests in flight."""
    results = await asyncio.gather(*(reranker.ascore(QUERY, DOCUMENTS) for _ in range(clients)))
    return results[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", action="append", required=True, help="a server's base URL (repeatable)")
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B", help="tokenizer: Hub name or directory")
    parser.add_argument("--api-key", default=None, help="the servers' --api-key, if any")
    parser.add_argument("--clients", type=int, default=32, help="concurrent async callers in the demo")
    args = parser.parse_args()

    options = {"base_urls": args.url, "api_key": args.api_key, "batch_size": 64, "max_concurrency": 8 * len(args.url)}
    with Reranker(args.model, backend="server", engine_options=options) as reranker:
        print("scores, in input order:", [round(s, 4) for s in reranker.score(QUERY, DOCUMENTS)])
        for hit in reranker.rank(QUERY, DOCUMENTS, top_n=2):
            print(f"  #{hit.index}  {hit.score:.4f}  {hit.document}")
        started = time.perf_counter()
        scores = asyncio.run(many_clients(reranker, args.clients))
        print(
            f"{args.clients} concurrent async calls in {time.perf_counter() - started:.2f} s; first: "
            f"{[round(s, 4) for s in scores]}"
        )


if __name__ == "__main__":
    main()
