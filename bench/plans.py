"""What each benchmark phase runs, in priority order (a phase cut short by its time limit loses its tail).

Models are named by shape and resolved under ``--models-root`` (``m06``, ``m4``, ``m8``); ``--model``
replaces them all (the CPU smoke check uses the tiny model for every run). ``est_s`` is the expected
wall time on an H100 including the engine start, used to skip runs that cannot finish in time.
"""

from __future__ import annotations

from typing import Any

MODEL_DIRS = {"0.6B": "m06", "4B": "m4", "8B": "m8"}

Run = dict[str, Any]

_ALL = "bulk,rag,long"
_OURS_EXTRAS = "bulk_prefix_first,build_only,rag_breakdown"


def _run(label: str, contender: str, shape: str, est_s: int, **settings: Any) -> Run:
    return {"label": label, "contender": contender, "shape": shape, "est_s": est_s, "workloads": _ALL, **settings}


#: the packed backend as the benchmark runs it: torch.compile and CUDA graphs (graphs are on by default on CUDA)
_PACKED: dict[str, Any] = {"compile": True}


def _packed(label: str, est_s: int, **options: Any) -> Run:
    """The packed backend on 0.6B with options beyond the benchmark's: bulk and RAG only (each step's gain)."""
    return _run(
        label, "ours_packed", "0.6B", est_s, workloads="bulk,rag", reps=2, engine_options={**_PACKED, **options}
    )


def _variant(label: str, est_s: int, **engine_options: Any) -> Run:
    """Ours on 0.6B with engine options beyond the defaults: bulk and RAG only (one engine start each)."""
    return _run(label, "ours", "0.6B", est_s, workloads="bulk,rag", reps=2, engine_options=engine_options)


PLANS: dict[str, list[Run]] = {
    # CPU smoke check: every contender and every code path on tiny workloads.
    "quick": [
        _run("ours", "ours", "0.6B", 150, extras=_OURS_EXTRAS + ",long_chunk"),
        _run("original", "original", "0.6B", 150),
        _run("vllm_score", "vllm_score", "0.6B", 150),
        _run("transformers", "transformers", "0.6B", 60),
        _run("sentence_transformers", "sentence_transformers", "0.6B", 60),
        _variant("ours+async_scheduling", 150, async_scheduling=True),
        _run("ours_packed", "ours_packed", "0.6B", 60, workloads="bulk,rag,concurrent", extras="exactness,profile"),
    ],
    # 0.6B side by side, the vLLM contenders (one engine each).
    "a": [
        {"label": "gemm_floor", "script": "gemm_floor", "est_s": 40},
        _run("ours", "ours", "0.6B", 170, extras=_OURS_EXTRAS, reps=3),
        _run("original", "original", "0.6B", 150, reps=2),
        _run("vllm_score", "vllm_score", "0.6B", 150, reps=2),
    ],
    # 0.6B side by side, the transformers contenders; then what each engine option buys.
    "b": [
        _run("transformers", "transformers", "0.6B", 100, reps=2, rag_calls=20),
        _run("sentence_transformers", "sentence_transformers", "0.6B", 100, reps=2, rag_calls=20),
        _variant("ours+async_scheduling", 120, async_scheduling=True),
        _variant("ours+batch131k", 120, max_num_batched_tokens=131072, max_num_seqs=1024),
        _variant("ours-prefix_caching", 120, enable_prefix_caching=False),
    ],
    # Issue 11, many callers on one engine: the concurrent workload (C = 1, 4, 16, 64 clients) before (the
    # synchronous backend of git 773ecba, via bench/legacy.py) and after (the async engine), and
    # vllm serve + our server backend with the same clients; after also runs the serial RAG and bulk targets.
    "d": [
        _run("ours_before", "ours_before", "0.6B", 150, workloads="concurrent,rag", rag_calls=20),
        _run("ours", "ours", "0.6B", 160, workloads="concurrent,rag,bulk", reps=2, rag_calls=20),
        _run("vllm_serve", "vllm_serve", "0.6B", 170, workloads="concurrent"),
        # Issue 12 under the same clients: the packed backend, concurrent calls combined into shared forwards.
        _run("ours_packed_d", "ours_packed", "0.6B", 90, workloads="concurrent", engine_options={"compile": True}),
    ],
    # Larger models, and the opt-in FP8 path.
    "c": [
        _run("ours", "ours", "4B", 200, reps=2, rag_calls=20, rag_warmup=3),
        _run("ours", "ours", "8B", 240, reps=2, rag_calls=20, rag_warmup=3),
        _variant("ours+fp8", 120, quantization="fp8"),
    ],
    # Issue 12: the packed backend (torch.compile) against ours on vLLM and vLLM's LLM.score in one H200 session;
    # labels differ from plan a's, so the tables of both render from one set of files. The two vLLM engine
    # starts (~100 s each) are most of the ~500 s; the eager run goes last, as the first to give up.
    "e": [
        _run("ours_packed", "ours_packed", "0.6B", 120, reps=3, extras="exactness", engine_options={"compile": True}),
        _run("ours_vllm_e", "ours", "0.6B", 160, reps=3),
        _run("vllm_score_e", "vllm_score", "0.6B", 140, reps=2),
        _run("ours_packed", "ours_packed", "4B", 90, workloads="bulk", reps=2, engine_options={"compile": True}),
        _run("ours_packed-eager", "ours_packed", "0.6B", 50, workloads="bulk,rag", reps=2),
    ],
    # The packed backend with CUDA graphs against ours on vLLM (the default), one machine, three calls back to
    # back (the first runs while the vLLM bundle travels; packed needs no vLLM). g1: the ceiling, packed as
    # shipped (compile + graphs) on every workload with its exactness and profile, and each step's gain.
    "g1": [
        {"label": "gemm_floor", "script": "gemm_floor", "est_s": 40},
        _run(
            "packed_g",
            "ours_packed",
            "0.6B",
            150,
            workloads="bulk,rag,concurrent",
            reps=3,
            extras="exactness,profile,rag_breakdown",
            engine_options=_PACKED,
        ),
        _packed("packed_g-graphs", 70, cuda_graphs=True),  # opt-in since the H100 run of 2026-12-06
        _packed("packed_g-nocompile", 50, compile=False),
        _run("packed_g", "ours_packed", "4B", 90, workloads="bulk,rag", reps=2, rag_calls=20, engine_options=_PACKED),
    ],
    # g2 (after the bundle is unpacked, same machine): vLLM, then packed again in the same call, same clients;
    # then vllm serve + our server backend under the same clients (server wheels installed first), then 4B.
    "g2": [
        _run("vllm_g2", "ours", "0.6B", 150, workloads="bulk,rag,concurrent", reps=3),
        _run("packed_g2", "ours_packed", "0.6B", 110, workloads="bulk,rag,concurrent", reps=3, engine_options=_PACKED),
        _run("vllm_serve_g2", "vllm_serve", "0.6B", 170, workloads="concurrent"),
        _run("vllm_g2", "ours", "4B", 150, workloads="bulk,rag", reps=2, rag_calls=20, rag_warmup=3),
    ],
    # Long documents (10k-30k tokens, past max_length 8192) scored by chunks, and truncated for the cost.
    "f": [
        _run("ours_chunk", "ours", "0.6B", 120, workloads="long_chunk"),
    ],
}
