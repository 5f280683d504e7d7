"""Add Qwen3-Reranker to a LangChain retriever: a vector search retrieves, Qwen3Rerank reorders and keeps the best.

    pip install langchain-qwen3-rerank langchain-classic
    python examples/langchain_rerank.py                                         # Qwen/Qwen3-Reranker-0.6B, vLLM
    python examples/langchain_rerank.py --model .cache/tiny --backend transformers   # offline, random weights

The one line that adds reranking is ``ContextualCompressionRetriever(base_compressor=Qwen3Rerank(...), ...)``.
The vector store uses LangChain's deterministic fake embedding so the example runs offline; its
retrieval order is arbitrary, which is exactly what the reranker then fixes. Use your own embeddings.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_qwen3_rerank import Qwen3CrossEncoder, Qwen3Rerank

DOCUMENTS = Path(__file__).with_name("data") / "documents.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B", help="Hub name or local directory")
    parser.add_argument("--backend", default="vllm", choices=("vllm", "transformers"))
    parser.add_argument("--query", default="What is the capital of France?")
    parser.add_argument("--top-n", type=int, default=3)
    args = parser.parse_args()

    lines = [line.strip() for line in DOCUMENTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=256))
    store.add_documents([Document(page_content=line, id=f"line-{i + 1}") for i, line in enumerate(lines)])
    base = store.as_retriever(search_kwargs={"k": 6})

    print(f"query: {args.query}\nvector search order:")
    for doc in base.invoke(args.query):
        print(f"  {doc.id:8}  {doc.page_content}")

    compressor = Qwen3Rerank(args.model, backend=args.backend, top_n=args.top_n)
    try:
        retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)
        docs = retriever.invoke(args.query)
        print(f"Qwen3-Reranker top {args.top_n}:")
        for doc in docs:
            print(f"  {doc.id:8}  {doc.metadata['relevance_score']:.4f}  {doc.page_content}")

        # ainvoke reranks natively (the engine works off the event loop): same documents, same scores.
        again = asyncio.run(retriever.ainvoke(args.query))
        same = [(d.id, d.metadata) for d in again] == [(d.id, d.metadata) for d in docs]
        print("ainvoke gives the same ranking:", same)

        # Cohere-style rerank() on plain strings: index into the input, score, document.
        best = compressor.rerank(lines, args.query, top_n=1)[0]
        print(f"rerank(): best is line {best['index'] + 1} ({best['relevance_score']:.4f})")

        # CrossEncoderReranker users switch by swapping the cross-encoder; the same reranker is reused.
        classic = CrossEncoderReranker(model=Qwen3CrossEncoder(reranker=compressor.reranker), top_n=args.top_n)
        switched = ContextualCompressionRetriever(base_compressor=classic, base_retriever=base)
        ids = [d.id for d in switched.invoke(args.query)]
        print("CrossEncoderReranker agrees:", ids == [d.id for d in docs])
    finally:
        compressor.close()


if __name__ == "__main__":
    main()
