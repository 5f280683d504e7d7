"""One contender, one process: start it, run the workloads, write JSON after every step.

    python bench/worker.py ours --model DIR --out results.json [--quick] [--workloads bulk,rag,long]

The JSON is rewritten after each workload, so a run cut short by a time limit still reports what it
finished. Timings are wall-clock around the call a user makes (prompt building and tokenization
included); every repetition and RAG call uses fresh documents so no contender measures a warm cache.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from contenders import CONTENDERS, Contender
from metrics import linear_params, max_abs_diff, mfu, percentile, top_changes
from workloads import QUICK_SIZES, SIZES, Sizes, Workload, bulk, chunk_documents, long_documents, rag_call

from qwen3_rerank import PromptBuilder
from qwen3_rerank.prompt import DEFAULT_INSTRUCTION


class Recorder:
    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {**header, "workloads": {}, "errors": {}}
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)


def _prompt_tokens(builder: PromptBuilder, pairs: list[tuple[str, str]]) -> list[int]:
    return [len(p) for p in builder.build_triples([(DEFAULT_INSTRUCTION, q, d) for q, d in pairs])]


def _throughput(tokens: int, pairs: int, seconds: float, params: int) -> dict[str, float]:
    tps = tokens / seconds
    return {"seconds": seconds, "tokens_per_s": tps, "pairs_per_s": pairs / seconds, "mfu": mfu(tps, params)}


def _rep(rep: int, tokens: int, pairs: int, seconds: float, params: int) -> dict[str, Any]:
    return {"rep": rep, "tokens": tokens, "pairs": pairs, **_throughput(tokens, pairs, seconds, params)}


def run_bulk(c: Contender, builder: PromptBuilder, sizes: Sizes, reps: int, params: int) -> dict[str, Any]:
    # Warm-up on its own documents: compiles whatever compiles lazily, fills nothing we measure later.
    c.score_pairs(bulk("warm", sizes, queries=max(1, sizes.bulk_queries // 8)).pairs())
    runs, scores0 = [], None
    for rep in range(reps):
        pairs = bulk(rep, sizes).pairs()
        tokens = sum(_prompt_tokens(builder, pairs))
        start = time.perf_counter()
        scores = c.score_pairs(pairs)
        seconds = time.perf_counter() - start
        if len(scores) != len(pairs):
            raise RuntimeError(f"{len(scores)} scores for {len(pairs)} pairs")
        runs.append(_rep(rep, tokens, len(pairs), seconds, params))
        if rep == 0:
            scores0 = scores
    best = statistics.median(r["tokens_per_s"] for r in runs)
    return {
        "runs": runs,
        "tokens_per_s": best,
        "pairs_per_s": statistics.median(r["pairs_per_s"] for r in runs),
        "mfu": mfu(best, params),
        "tokens_per_pair": runs[0]["tokens"] / runs[0]["pairs"],
        "scores_rep0": scores0,
    }


def run_bulk_prefix_first(c: Any, builder: PromptBuilder, sizes: Sizes, reps: int, params: int) -> dict[str, Any]:
    runs = []
    for rep in range(reps):
        pairs = bulk(f"pf{rep}", sizes).pairs()
        tokens = sum(_prompt_tokens(builder, pairs))
        start = time.perf_counter()
        c.score_pairs_prefix_first(pairs)
        seconds = time.perf_counter() - start
        runs.append(_rep(rep, tokens, len(pairs), seconds, params))
    best = statistics.median(r["tokens_per_s"] for r in runs)
    return {"runs": runs, "tokens_per_s": best, "mfu": mfu(best, params)}


def run_build_only(c: Any, sizes: Sizes) -> dict[str, Any]:
    """How long our prompt building (tokenization included) takes for one bulk workload, no engine."""
    pairs = bulk(0, sizes).pairs()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        c.build_prompts(pairs)
        times.append(time.perf_counter() - start)
    return {"pairs": len(pairs), "seconds": statistics.median(times), "all_seconds": times}


def run_rag_breakdown(c: Any, sizes: Sizes, calls: int = 10) -> dict[str, Any]:
    """Ours only: a RAG call split into prompt building (tokenization) and the engine call."""
    build_ms, engine_ms = [], []
    for i in range(calls):
        query, docs = rag_call(f"split{i}", sizes)
        start = time.perf_counter()
        prompts = c.reranker.prompts.build(DEFAULT_INSTRUCTION, query, docs)
        mid = time.perf_counter()
        c.reranker.backend.score_prompts(prompts)
        end = time.perf_counter()
        build_ms.append((mid - start) * 1000.0)
        engine_ms.append((end - mid) * 1000.0)
    return {
        "calls": calls,
        "build_p50_ms": percentile(build_ms, 50),
        "engine_p50_ms": percentile(engine_ms, 50),
        "build_ms": build_ms,
        "engine_ms": engine_ms,
    }


def run_rag(c: Contender, builder: PromptBuilder, sizes: Sizes, calls: int, warmup: int) -> dict[str, Any]:
    for i in range(warmup):
        query, docs = rag_call(f"warm{i}", sizes)
        c.score_query(query, docs)
    latencies, tokens, kept = [], [], []
    for i in range(calls):
        query, docs = rag_call(i, sizes)
        start = time.perf_counter()
        scores = c.score_query(query, docs)
        latencies.append((time.perf_counter() - start) * 1000.0)
        tokens.append(sum(_prompt_tokens(builder, [(query, d) for d in docs])))
        if i < 3:
            kept.extend(scores)
    return {
        "calls": calls,
        "docs_per_call": sizes.rag_docs,
        "latencies_ms": latencies,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "tokens_per_call": statistics.fmean(tokens),
        "scores_first3": kept,
    }


#: clients in the concurrent workload, and calls each client makes (more clients, fewer calls each)
CONCURRENT_CLIENTS = (1, 4, 16, 64)
QUICK_CONCURRENT_CLIENTS = (1, 2, 4)


def _calls_per_client(clients: int, quick: bool) -> int:
    if quick:
        return 2
    return max(4, 16 // clients)  # 16, 4, 4, 4 calls: >= 64 calls (6,400 pairs) per client count


async def _client(c: Contender, calls: list[tuple[str, list[str]]], latencies: list[float]) -> None:
    for query, docs in calls:
        start = time.perf_counter()
        scores = await c.ascore_query(query, docs)
        latencies.append((time.perf_counter() - start) * 1000.0)
        if len(scores) != len(docs):
            raise RuntimeError(f"{len(scores)} scores for {len(docs)} documents")


async def _concurrent_round(c: Contender, work: list[list[tuple[str, list[str]]]], latencies: list[float]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(_client(c, calls, latencies) for calls in work))
    return time.perf_counter() - start


def run_concurrent(c: Contender, sizes: Sizes, quick: bool) -> dict[str, Any]:
    """C asyncio clients x K calls each, one query x 100 fresh documents a call, on one contender object.

    Every call's documents are built before the clock starts; a client makes its calls one after another.
    pairs/s is all pairs over the wall time of the whole round; p50/p99 are over every call of the round.
    """
    asyncio.run(c.ascore_query(*rag_call("cc-warm", sizes)))
    rounds: dict[str, Any] = {}
    for clients in QUICK_CONCURRENT_CLIENTS if quick else CONCURRENT_CLIENTS:
        k = _calls_per_client(clients, quick)
        work = [[rag_call(f"cc{clients}-{i}-{j}", sizes) for j in range(k)] for i in range(clients)]
        latencies: list[float] = []
        seconds = asyncio.run(_concurrent_round(c, work, latencies))
        pairs = clients * k * sizes.rag_docs
        rounds[str(clients)] = {
            "clients": clients,
            "calls_per_client": k,
            "pairs": pairs,
            "seconds": seconds,
            "pairs_per_s": pairs / seconds,
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
            "latencies_ms": latencies,
        }
        print(
            f"  concurrent C={clients}: {pairs / seconds:.0f} pairs/s p50 {percentile(latencies, 50):.0f} ms "
            f"p99 {percentile(latencies, 99):.0f} ms",
            file=sys.stderr,
            flush=True,
        )
    return {"docs_per_call": sizes.rag_docs, "rounds": rounds}


def run_long(c: Contender, builder: PromptBuilder, sizes: Sizes, params: int) -> dict[str, Any]:
    work: Workload = long_documents(sizes)
    pairs = work.pairs()
    c.score_pairs(long_documents(sizes, seed="long-warm").pairs()[:2])
    lengths = _prompt_tokens(builder, pairs)
    start = time.perf_counter()
    scores = c.score_pairs(pairs)
    seconds = time.perf_counter() - start
    return {
        "pairs": len(pairs),
        "tokens": sum(lengths),
        "min_prompt_tokens": min(lengths),
        "max_prompt_tokens": max(lengths),
        **_throughput(sum(lengths), len(pairs), seconds, params),
        "scores": scores,
    }


def run_exactness(c: Any, sizes: Sizes, model: str) -> dict[str, Any]:
    """ours_packed only: the bulk repetition-0 pairs (the ones every contender's ``scores_rep0`` holds) scored
    again, and by the transformers backend in the same dtype on the same device, in this process."""
    from qwen3_rerank import Reranker

    pairs = bulk(0, sizes).pairs()
    mine = c.score_pairs(pairs)
    backend = c.reranker.backend
    options = {"dtype": str(backend.dtype).removeprefix("torch."), "device": str(backend.device), "batch_size": 32}
    start = time.perf_counter()
    with Reranker(c.model, backend="transformers", engine_options=options) as reference:
        theirs = reference.score_pairs(pairs)
    diffs = [abs(a - b) for a, b in zip(mine, theirs, strict=True)]
    return {
        "pairs": len(pairs),
        "reference": f"Reranker(backend='transformers', engine_options={options})",
        "reference_seconds": time.perf_counter() - start,
        "max_abs_diff": max_abs_diff(mine, theirs),
        "mean_abs_diff": statistics.fmean(diffs),
        "top_changed_share": top_changes(mine, theirs, sizes.bulk_docs_per_query),
        "docs_per_query": sizes.bulk_docs_per_query,
        "scores": mine,
        "reference_scores": theirs,
    }


def run_profile(c: Any, sizes: Sizes) -> dict[str, Any]:
    """ours_packed only: where one RAG call's and one bulk call's time goes on the device (torch.profiler):
    wall time, summed kernel time, and the top kernels, so every optimisation step has a measured target."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    out: dict[str, Any] = {}
    cases = {
        "rag": lambda: c.score_query(*rag_call("prof", sizes)),
        "bulk": lambda: c.score_pairs(bulk("prof", sizes).pairs()),
    }
    for name, call in cases.items():
        call()  # warm: every shape of this call compiled and captured before the profile
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            call()
            wall = time.perf_counter() - start
        events = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
        kernel_us = sum(e.self_device_time_total for e in events)
        top = sorted(events, key=lambda e: e.self_device_time_total, reverse=True)[:15]
        out[name] = {
            "wall_ms": wall * 1000.0,
            "kernel_ms": kernel_us / 1000.0,
            "top": [{"name": e.key[:120], "ms": e.self_device_time_total / 1000.0, "calls": e.count} for e in top],
        }
        print(f"  profile {name}: wall {wall * 1000:.1f} ms, kernels {kernel_us / 1000:.1f} ms", file=sys.stderr)
    return out


def run_long_chunk(c: Any, builder: PromptBuilder, sizes: Sizes, params: int) -> dict[str, Any]:
    """Ours only: documents longer than max_length, scored by chunks (and, for the cost, truncated)."""
    reranker = c.reranker
    options = {
        "long_documents": "chunk",
        "chunk_tokens": sizes.chunk_tokens,
        "chunk_overlap": sizes.chunk_overlap,
        "max_chunks": None,
    }
    pairs = chunk_documents(sizes).pairs()
    reranker.score_pairs(chunk_documents(sizes, seed="chunk-warm").pairs()[:2], **options)
    # What the engine is given: every chunk prompt (prompt building is timed below, as a user sees it).
    from qwen3_rerank.chunking import ChunkOptions, plan_chunks

    triples = [(DEFAULT_INSTRUCTION, q, d) for q, d in pairs]
    start = time.perf_counter()
    plan = plan_chunks(builder, triples, ChunkOptions.create(**options))
    build_seconds = time.perf_counter() - start
    chunk_tokens = sum(len(p) for p in plan.prompts)
    doc_tokens = [len(ids) for ids in builder.document_ids([d for _, d in pairs])]
    start = time.perf_counter()
    scores = reranker.score_pairs(pairs, **options)
    seconds = time.perf_counter() - start
    # Truncation is timed on other documents of the same sizes: the same documents' first chunks are
    # already in the prefix cache (a truncated prompt is nearly its first chunk's), which would flatter it.
    fresh = chunk_documents(sizes, seed="chunk-truncate").pairs()
    truncated_tokens = sum(_prompt_tokens(builder, fresh))
    start = time.perf_counter()
    reranker.score_pairs(fresh, long_documents="truncate")
    truncate_seconds = time.perf_counter() - start
    truncated = reranker.score_pairs(pairs, long_documents="truncate")
    return {
        "pairs": len(pairs),
        "chunks": len(plan.prompts),
        "chunks_per_doc": len(plan.prompts) / len(pairs),
        "min_doc_tokens": min(doc_tokens),
        "max_doc_tokens": max(doc_tokens),
        "chunk_tokens_setting": sizes.chunk_tokens,
        "chunk_overlap": sizes.chunk_overlap,
        "tokens": chunk_tokens,
        **_throughput(chunk_tokens, len(pairs), seconds, params),
        "docs_per_s": len(pairs) / seconds,
        "build_seconds": build_seconds,
        "truncate": {"tokens": truncated_tokens, **_throughput(truncated_tokens, len(pairs), truncate_seconds, params)},
        # A sanity figure: chunk mode sees the truncated start too, so it should rarely score lower.
        "share_chunk_ge_truncate": sum(s >= t - 1e-6 for s, t in zip(scores, truncated, strict=True)) / len(pairs),
        "scores": scores,
        "scores_truncate": truncated,
    }


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("torch", "transformers", "vllm", "sentence_transformers", "tokenizers"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = getattr(module, "__version__", "?")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--label", default=None, help="name of this run in the results (default: contender)")
    parser.add_argument("--quick", action="store_true", help="tiny workloads (CPU smoke check)")
    parser.add_argument("--workloads", default="bulk,rag,long")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rag-calls", type=int, default=30)
    parser.add_argument("--rag-warmup", type=int, default=5)
    parser.add_argument("--engine-options", default="{}", help="JSON engine options (ours, ours_packed)")
    parser.add_argument(
        "--extras",
        default="",
        help="ours: bulk_prefix_first,build_only,rag_breakdown,long_chunk; packed: exactness,profile,rag_breakdown",
    )
    args = parser.parse_args(argv)

    sizes = QUICK_SIZES if args.quick else SIZES
    params = linear_params(args.model)
    options = {"engine_options": json.loads(args.engine_options)}
    record = Recorder(
        args.out,
        {
            "label": args.label or args.contender,
            "contender": args.contender,
            "model": args.model,
            "linear_params": params,
            "quick": args.quick,
            "options": options,
            "host": platform.node(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    builder = PromptBuilder.from_pretrained(args.model)
    contender = CONTENDERS[args.contender](args.model, options)
    try:
        start = time.perf_counter()
        contender.start()
        record.data["start_s"] = time.perf_counter() - start
    except Exception as exc:
        record.data["errors"]["start"] = f"{type(exc).__name__}: {exc}"
        record.data["traceback"] = traceback.format_exc()
        record.data["versions"] = _versions()
        record.flush()
        print(f"[{args.contender}] could not start: {exc}", file=sys.stderr)
        return 3
    record.data["versions"] = _versions()
    record.data["info"] = contender.info()
    record.flush()

    steps = {
        "bulk": lambda: run_bulk(contender, builder, sizes, args.reps, params),
        "rag": lambda: run_rag(contender, builder, sizes, args.rag_calls, args.rag_warmup),
        "long": lambda: run_long(contender, builder, sizes, params),
        "concurrent": lambda: run_concurrent(contender, sizes, args.quick),
        "bulk_prefix_first": lambda: run_bulk_prefix_first(contender, builder, sizes, args.reps, params),
        "build_only": lambda: run_build_only(contender, sizes),
        "rag_breakdown": lambda: run_rag_breakdown(contender, sizes),
        "exactness": lambda: run_exactness(contender, sizes, args.model),
        "profile": lambda: run_profile(contender, sizes),
        "long_chunk": lambda: run_long_chunk(contender, builder, sizes, params),
    }
    wanted = [w for w in args.workloads.split(",") if w] + [e for e in args.extras.split(",") if e]
    for name in wanted:
        print(f"[{record.data['label']}] {name} ...", file=sys.stderr, flush=True)
        try:
            record.data["workloads"][name] = steps[name]()
        except Exception as exc:
            record.data["errors"][name] = f"{type(exc).__name__}: {str(exc)[:500]}"
            print(traceback.format_exc(), file=sys.stderr)
            _free_cuda()
        record.data["info"] = contender.info()
        record.flush()
    try:
        contender.close()
    except Exception as exc:
        record.data["errors"]["close"] = f"{type(exc).__name__}: {exc}"
    record.data["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # vLLM's engine process can outlive a clean return for a while; the driver needs the GPU back now.
    os._exit(0)


def _free_cuda() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
