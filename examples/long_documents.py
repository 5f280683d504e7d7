"""Long documents: score each by its best chunk instead of only its beginning.

python examples/long_documents.py                                  # Qwen/Qwen3-Reranker-0.6B, vLLM
python examples/long_documents.py --model .cache/tiny-model --backend transformers
"""

from __future__ import annotations

import argparse

from qwen3_rerank import Reranker

QUERY = "Which river flows through Paris?"
# The answer sits at the end of a long page: truncation never reads it, chunk mode does.
FILLER = "The museum opens at nine and closes at six, except on public holidays. " * 120
PAGE = FILLER + "The Seine flows through Paris on its way to the English Channel."
DOCUMENTS = [PAGE, "Berlin lies on the Spree.", "The Thames flows through London."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B")
    parser.add_argument("--backend", default="vllm", choices=("vllm", "transformers", "packed"))
    parser.add_argument("--max-length", type=int, default=512, help="small, so that the page needs chunks")
    args = parser.parse_args()

    with Reranker(args.model, backend=args.backend, max_length=args.max_length) as reranker:
        print("truncate:", [round(s, 4) for s in reranker.score(QUERY, DOCUMENTS)])
        chunked = reranker.with_options(long_documents="chunk", chunk_overlap=32)
        for hit in chunked.rank(QUERY, DOCUMENTS, return_chunks=True):
            best = hit.best_chunk
            assert best is not None and hit.chunks is not None
            print(
                f"#{hit.index} {hit.score:.4f}: best of {len(hit.chunks)} chunk(s) is chunk {best.index}, "
                f"characters {best.char_start}-{best.char_end}"
            )


if __name__ == "__main__":
    main()
