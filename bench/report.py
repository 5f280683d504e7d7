"""Tables and plots from the benchmark's JSON results.

    python bench/report.py bench/results/results_a.json bench/results/results_b.json ... \
        --img-dir docs/img --tables bench/results/tables.md

Score differences are max |score - ours| on the same pairs: bulk repetition 0 (2048 pairs), the first
three RAG calls (300 pairs) and the long documents (100 pairs); "ours" is the default-settings run of
the same model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics import max_abs_diff, top_changes

SCORE_KEYS = (("bulk", "scores_rep0"), ("rag", "scores_first3"), ("long", "scores"))
TARGETS = {"0.6B": {"bulk": 450e3, "rag_p50_ms": 50.0}, "4B": {"bulk": 90e3}}


def load(paths: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for path in paths:
        data = json.loads(path.read_text())
        for run in data["runs"]:
            run["plan"] = data["plan"]
            runs.append(run)
    return runs


def _get(run: dict[str, Any], workload: str, key: str) -> float:
    value = run.get("workloads", {}).get(workload, {}).get(key)
    return float("nan") if value is None else float(value)


def _fmt(value: float, scale: float = 1.0, digits: int = 1, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value / scale:,.{digits}f}{suffix}"


def score_diffs(run: dict[str, Any], ours: dict[str, Any] | None) -> dict[str, float | None]:
    diffs: dict[str, float | None] = {}
    for workload, key in SCORE_KEYS:
        mine = run.get("workloads", {}).get(workload, {}).get(key)
        ref = (ours or {}).get("workloads", {}).get(workload, {}).get(key)
        diffs[workload] = max_abs_diff(mine, ref) if mine and ref and len(mine) == len(ref) else None
    return diffs


def _ours(runs: list[dict[str, Any]], shape: str) -> dict[str, Any] | None:
    for run in runs:
        if run.get("label") == "ours" and run.get("shape") == shape and "workloads" in run:
            return run
    return None


def _memory(run: dict[str, Any]) -> str:
    peak = run.get("gpu_memory", {}).get("nvidia_smi_peak_mib")
    return "—" if peak is None else f"{peak / 1024:.1f}"


def contender_table(runs: list[dict[str, Any]], shape: str, labels: list[str]) -> str:
    ours = _ours(runs, shape)
    lines = [
        "| contender | engine start (s) | bulk tokens/s | bulk pairs/s | bulk MFU | RAG p50 (ms) | RAG p99 (ms) "
        "| long docs tokens/s | peak GPU memory (GiB, nvidia-smi) | max abs score diff vs ours (bulk / RAG / long) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in labels:
        matching = [r for r in runs if r.get("label") == label and r.get("shape") == shape]
        run = next((r for r in matching if "skipped" not in r), matching[0] if matching else None)
        if run is None:
            lines.append(f"| {DISPLAY.get(label, label)} | not run | | | | | | | | |")
            continue
        if "skipped" in run or run.get("errors", {}).get("start"):
            why = run.get("skipped") or run["errors"]["start"]
            lines.append(f"| {DISPLAY.get(label, label)} | did not run: {why[:160]} | | | | | | | | |")
            continue
        diffs = score_diffs(run, ours)
        diff_text = " / ".join("—" if d is None else f"{d:.2g}" for d in diffs.values())
        if run is ours:
            diff_text = "(reference)"
        errors = {k: v for k, v in run.get("errors", {}).items() if k != "close"}
        long_text = _fmt(_get(run, "long", "tokens_per_s"), 1e3, 0, "k")
        if "long" in errors:
            long_text = "OOM" if "out of memory" in errors["long"].lower() else f"error: {errors['long'][:60]}"
        lines.append(
            f"| {DISPLAY.get(label, label)} | {_fmt(run.get('start_s'), 1, 0)} "
            f"| {_fmt(_get(run, 'bulk', 'tokens_per_s'), 1e3, 0, 'k')} "
            f"| {_fmt(_get(run, 'bulk', 'pairs_per_s'), 1, 0)} | {_fmt(_get(run, 'bulk', 'mfu') * 100, 1, 0, '%')} "
            f"| {_fmt(_get(run, 'rag', 'p50_ms'))} | {_fmt(_get(run, 'rag', 'p99_ms'))} | {long_text} "
            f"| {_memory(run)} | {diff_text} |"
        )
    return "\n".join(lines)


def _engine_run_options(run: dict[str, Any]) -> dict[str, Any]:
    """The vLLM settings the run's engine actually had (defaults included), as the worker read them."""
    vllm = (run.get("info") or {}).get("vllm") or {}
    keys = ("max_num_batched_tokens", "max_num_seqs", "async_scheduling", "enable_prefix_caching", "quantization")
    return {k: vllm.get(k) for k in keys}


def variants_table(runs: list[dict[str, Any]], shape: str) -> str:
    """Each run against the run it differs from by one change (``BASELINE``), with the engine's settings."""
    by_label = {r["label"]: r for r in runs if r.get("shape") == shape and "workloads" in r and r.get("plan") != "e"}
    lines = [
        "| run | changed vs its baseline | engine settings (batched tokens / seqs / async / prefix cache / quant) "
        "| bulk tokens/s (reps) | bulk vs baseline | RAG p50 (ms) | RAG p50 vs baseline "
        "| max abs score diff vs ours bf16 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ours = by_label.get("ours")
    for label, run in by_label.items():
        if run.get("contender") != "ours":
            continue
        base = by_label.get(BASELINE.get(label, "ours"))
        extra = (run.get("options") or {}).get("engine_options") or {}
        settings = " / ".join(str(v) for v in _engine_run_options(run).values())
        bulk, rag = _get(run, "bulk", "tokens_per_s"), _get(run, "rag", "p50_ms")
        reps = ", ".join(f"{r['tokens_per_s'] / 1e3:.0f}k" for r in run["workloads"].get("bulk", {}).get("runs", []))
        if base is None or base is run:
            vs_bulk = vs_rag = "(baseline)"
        else:
            vs_bulk = _fmt((bulk / _get(base, "bulk", "tokens_per_s") - 1) * 100, 1, 1, "%") + f" vs {base['label']}"
            vs_rag = _fmt((rag / _get(base, "rag", "p50_ms") - 1) * 100, 1, 1, "%")
        diff = score_diffs(run, ours)["bulk"] if run is not ours else None
        lines.append(
            f"| {label} | {json.dumps(extra) if extra else '—'} | {settings} | {_fmt(bulk, 1e3, 0, 'k')} ({reps}) "
            f"| {vs_bulk} | {_fmt(rag)} | {vs_rag} | {'(reference)' if run is ours else _fmt(diff, 1, 4)} |"
        )
        prefix_first = run["workloads"].get("bulk_prefix_first")
        if prefix_first:
            pf = prefix_first["tokens_per_s"]
            pf_reps = ", ".join(f"{r['tokens_per_s'] / 1e3:.0f}k" for r in prefix_first["runs"])
            lines.append(
                f"| {label}, one document per query submitted first | prompt order | same engine "
                f"| {_fmt(pf, 1e3, 0, 'k')} ({pf_reps}) | {_fmt((pf / bulk - 1) * 100, 1, 1, '%')} vs {label} | | | |"
            )
    return "\n".join(lines)


#: The FP8 run came after async_scheduling became a default, so its baseline is the async run.
BASELINE = {"ours+fp8": "ours+async_scheduling"}


SIZE_ROWS = (
    ("0.6B, defaults at run time", "ours", "0.6B"),
    ("0.6B, new defaults (+async_scheduling)", "ours+async_scheduling", "0.6B"),
    ("4B, new defaults", "ours", "4B"),
    ("8B, new defaults", "ours", "8B"),
)


def sizes_table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| model | bulk tokens/s | bulk MFU | RAG p50 (ms) | RAG p99 (ms) | long docs tokens/s | long docs MFU "
        "| peak GPU memory (GiB) | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for title, label, shape in SIZE_ROWS:
        run = next((r for r in runs if r.get("label") == label and r.get("shape") == shape and "workloads" in r), None)
        if run is None:
            lines.append(f"| {title} | not run | | | | | | | |")
            continue
        target = TARGETS.get(shape, {})
        verdict = []
        if "bulk" in target:
            ok = _get(run, "bulk", "tokens_per_s") >= target["bulk"]
            verdict.append(f"bulk ≥ {target['bulk'] / 1e3:.0f}k: {'met' if ok else 'missed'}")
        if "rag_p50_ms" in target:
            ok = _get(run, "rag", "p50_ms") <= target["rag_p50_ms"]
            verdict.append(f"RAG p50 ≤ {target['rag_p50_ms']:.0f} ms: {'met' if ok else 'missed'}")
        if "long" in run.get("workloads", {}):
            verdict.append(f"long docs up to {run['workloads']['long']['max_prompt_tokens']} tokens x 100: no OOM")
        bulk_tps, long_tps = _get(run, "bulk", "tokens_per_s"), _get(run, "long", "tokens_per_s")
        lines.append(
            f"| {title} | {_fmt(bulk_tps, 1e3, 1, 'k')} | {_fmt(_get(run, 'bulk', 'mfu') * 100, 1, 0, '%')} "
            f"| {_fmt(_get(run, 'rag', 'p50_ms'))} | {_fmt(_get(run, 'rag', 'p99_ms'))} "
            f"| {_fmt(long_tps, 1e3, 1, 'k')} | {_fmt(_get(run, 'long', 'mfu') * 100, 1, 0, '%')} "
            f"| {_memory(run)} | {'; '.join(verdict)} |"
        )
    return "\n".join(lines)


def chunk_table(runs: list[dict[str, Any]]) -> str:
    """Long documents past max_length: chunk mode's throughput, and truncation's on the same documents."""
    lines = [
        "| run | model | documents (tokens) | chunks per doc | chunk mode docs/s | chunk mode tokens/s | chunk MFU "
        "| truncate docs/s | truncate tokens/s | chunk time / truncate time | peak GPU memory (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        w = run.get("workloads", {}).get("long_chunk")
        if not w:
            if "long_chunk" in run.get("errors", {}):
                lines.append(
                    f"| {run['label']} | {run.get('shape')} | error: {run['errors']['long_chunk'][:80]} "
                    "| | | | | | | | |"
                )
            continue
        t = w["truncate"]
        lines.append(
            f"| {run['label']} | {run.get('shape')} | {w['pairs']} ({w['min_doc_tokens']}-{w['max_doc_tokens']}) "
            f"| {w['chunks_per_doc']:.2f} | {_fmt(w['docs_per_s'])} | {_fmt(w['tokens_per_s'], 1e3, 1, 'k')} "
            f"| {_fmt(w['mfu'] * 100, 1, 0, '%')} | {_fmt(t['pairs_per_s'])} | {_fmt(t['tokens_per_s'], 1e3, 1, 'k')} "
            f"| {w['seconds'] / t['seconds']:.2f} | {_memory(run)} |"
        )
    if len(lines) == 2:
        lines.append("| not run | | | | | | | | | | |")
    return "\n".join(lines)


def floor_table(runs: list[dict[str, Any]]) -> str:
    floor = next((r for r in runs if r.get("label") == "gemm_floor" and r.get("gemm")), None)
    if floor is None:
        return "(the GEMM floor was not measured)"
    lines = [
        f"8192³ bf16 product: {floor.get('peak_check_tflops', float('nan')):.0f} TFLOP/s.",
        "",
        "| model | qkv | o | gate+up | down | linear-only ceiling (tokens/s, all prompt tokens computed) |",
        "|---|---|---|---|---|---|",
    ]
    for shape, g in floor["gemm"].items():
        cells = " | ".join(f"{g['per_layer'][k]['tflops']:.0f} TFLOP/s" for k in ("qkv", "o", "gate_up", "down"))
        lines.append(f"| {shape} | {cells} | {g['linear_tokens_per_s'] / 1e3:,.0f}k |")
    att = floor.get("attention", {})
    if att:
        lines.append("")
        lines.append("| causal attention, one layer, 16 heads x 128 (SDPA) | ms | TFLOP/s | µs per token |")
        lines.append("|---|---|---|---|")
        for key, a in att.items():
            lines.append(
                f"| {key} x {a['batch']} | {a['ms_per_layer']:.2f} | {a['tflops']:.0f} "
                f"| {a['us_per_token_per_layer']:.4f} |"
            )
    return "\n".join(lines)


#: plan e (issue 12): label, shape, what the row shows
PACKED_ROWS = (
    ("ours_packed", "0.6B", "ours, backend='packed' (torch.compile)"),
    ("ours_packed-eager", "0.6B", "ours, backend='packed' (eager)"),
    ("ours_vllm_e", "0.6B", "ours, backend='vllm' (defaults)"),
    ("vllm_score_e", "0.6B", "vLLM LLM.score + Qwen3 template"),
    ("ours_packed", "4B", "ours, backend='packed' (torch.compile), 4B"),
)
PACKED_TARGETS = {"rag_p50_ms": 50.0, "bulk": 600e3, "bulk_4B": 95e3}


def _plan_run(runs: list[dict[str, Any]], label: str, shape: str, plan: str = "e") -> dict[str, Any] | None:
    found = [r for r in runs if r.get("plan") == plan and r.get("label") == label and r.get("shape") == shape]
    return next((r for r in found if "workloads" in r), found[0] if found else None)


def _scores(run: dict[str, Any] | None, workload: str, key: str) -> list[float] | None:
    return ((run or {}).get("workloads", {}).get(workload) or {}).get(key)


def _compare(a: list[float] | None, b: list[float] | None, group: int | None) -> str:
    """max |a - b|, and with ``group`` (documents a query, query-major) the share of changed top documents."""
    if not a or not b or len(a) != len(b):
        return "—"
    if group is None:
        return f"{max_abs_diff(a, b):.2g}"
    return f"{max_abs_diff(a, b):.2g} / {top_changes(a, b, group) * 100:.1f} %"


def packed_tables(runs: list[dict[str, Any]]) -> str:
    """Plan e side by side: speed, the issue's targets, and how far the scores move (bf16)."""
    lines = [
        "| run | engine start (s) | bulk tokens/s | bulk MFU | RAG p50 (ms) | RAG p99 (ms) | long docs tokens/s "
        "| peak GPU memory (GiB, nvidia-smi) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, shape, title in PACKED_ROWS:
        run = _plan_run(runs, label, shape)
        if run is None or "workloads" not in run:
            why = "not run" if run is None else f"did not run: {(run.get('skipped') or run['errors']['start'])[:120]}"
            lines.append(f"| {title} | {why} | | | | | | |")
            continue
        errors = {k: v for k, v in run.get("errors", {}).items() if k != "close"}
        long_text = _fmt(_get(run, "long", "tokens_per_s"), 1e3, 0, "k")
        if "long" in errors:
            long_text = "OOM" if "out of memory" in errors["long"].lower() else f"error: {errors['long'][:60]}"
        lines.append(
            f"| {title} | {_fmt(run.get('start_s'), 1, 0)} | {_fmt(_get(run, 'bulk', 'tokens_per_s'), 1e3, 0, 'k')} "
            f"| {_fmt(_get(run, 'bulk', 'mfu') * 100, 1, 0, '%')} | {_fmt(_get(run, 'rag', 'p50_ms'))} "
            f"| {_fmt(_get(run, 'rag', 'p99_ms'))} | {long_text} | {_memory(run)} |"
        )
    packed, packed4, vllm = (
        _plan_run(runs, "ours_packed", "0.6B"),
        _plan_run(runs, "ours_packed", "4B"),
        _plan_run(runs, "ours_vllm_e", "0.6B"),
    )
    verdict = lambda ok: "—" if ok is None else ("met" if ok else "missed")  # noqa: E731
    p50, bulk_tps = _get(packed or {}, "rag", "p50_ms"), _get(packed or {}, "bulk", "tokens_per_s")
    bulk4 = _get(packed4 or {}, "bulk", "tokens_per_s")
    long_ = (packed or {}).get("workloads", {}).get("long")
    lines += [
        "",
        "| target (packed, H200) | result | |",
        "|---|---|---|",
        f"| RAG call 1 x 100 p50 ≤ 50 ms | {_fmt(p50)} ms | {verdict(None if math.isnan(p50) else p50 <= 50)} |",
        f"| 0.6B bulk ≥ 600k tokens/s | {_fmt(bulk_tps, 1e3, 0, 'k')} "
        f"| {verdict(None if math.isnan(bulk_tps) else bulk_tps >= 600e3)} |",
        f"| 4B bulk ≥ 95k tokens/s | {_fmt(bulk4, 1e3, 1, 'k')} "
        f"| {verdict(None if math.isnan(bulk4) else bulk4 >= 95e3)} |",
        f"| long documents 8k x 100, no OOM | "
        f"{'up to ' + str(long_['max_prompt_tokens']) + ' tokens x ' + str(long_['pairs']) if long_ else '—'} "
        f"| {verdict(bool(long_) if packed else None)} |",
    ]
    exact = _scores(packed, "exactness", "scores") and (packed or {})["workloads"]["exactness"]
    group = exact["docs_per_query"] if exact else 32
    rag_group = ((packed or {}).get("workloads", {}).get("rag") or {}).get("docs_per_call", 100)
    score_vllm = _plan_run(runs, "vllm_score_e", "0.6B")
    lines += [
        "",
        "Scores in each run's dtype (bf16 on the GPU), max |Δ| / share of queries whose top document changes, "
        "on the same pairs "
        f"(bulk: {len(exact['scores']) if exact else '—'} pairs, {group} a query; RAG: the first 3 calls):",
        "",
        "| compared | bulk | RAG | long docs (max abs) |",
        "|---|---|---|---|",
        f"| packed vs transformers backend (bf16, same device) "
        f"| {_compare(exact and exact['scores'], exact and exact['reference_scores'], group)} | | |",
        "| packed vs ours on vLLM "
        f"| {_compare(_scores(packed, 'bulk', 'scores_rep0'), _scores(vllm, 'bulk', 'scores_rep0'), group)} "
        f"| {_compare(_scores(packed, 'rag', 'scores_first3'), _scores(vllm, 'rag', 'scores_first3'), rag_group)} "
        f"| {_compare(_scores(packed, 'long', 'scores'), _scores(vllm, 'long', 'scores'), None)} |",
        f"| transformers backend vs ours on vLLM "
        f"| {_compare(exact and exact['reference_scores'], _scores(vllm, 'bulk', 'scores_rep0'), group)} | | |",
        f"| vLLM LLM.score vs ours on vLLM "
        f"| {_compare(_scores(score_vllm, 'bulk', 'scores_rep0'), _scores(vllm, 'bulk', 'scores_rep0'), group)} "
        f"| {_compare(_scores(score_vllm, 'rag', 'scores_first3'), _scores(vllm, 'rag', 'scores_first3'), rag_group)} "
        f"| {_compare(_scores(score_vllm, 'long', 'scores'), _scores(vllm, 'long', 'scores'), None)} |",
    ]
    info = ((packed or {}).get("info") or {}).get("packed")
    if info:
        lines += ["", f"Packed backend settings: {json.dumps(info)}."]
    return "\n".join(lines)


def packed_plot(runs: list[dict[str, Any]], img_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [
        (title, r)
        for label, shape, title in PACKED_ROWS[:4]
        if (r := _plan_run(runs, label, shape)) is not None and "workloads" in r
    ]
    if not rows:
        return []
    img_dir.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    names = [t for t, _ in rows]
    colors = ["tab:green" if r["contender"] == "ours_packed" else "tab:gray" for _, r in rows]
    left.barh(names, [_get(r, "bulk", "tokens_per_s") / 1e3 for _, r in rows], color=colors)
    left.axvline(600, color="tab:red", linestyle="--", label="target 600k")
    left.set_xlabel("bulk, thousand prompt tokens/s (0.6B, bf16)")
    left.invert_yaxis()
    left.legend()
    y = range(len(rows))
    right.barh([i - 0.2 for i in y], [_get(r, "rag", "p50_ms") for _, r in rows], height=0.4, label="p50")
    right.barh([i + 0.2 for i in y], [_get(r, "rag", "p99_ms") for _, r in rows], height=0.4, label="p99")
    right.set_yticks(list(y), [""] * len(rows))
    right.axvline(50, color="tab:red", linestyle="--", label="target p50 50 ms")
    right.set_xlabel("RAG call 1 x 100 documents, ms")
    right.invert_yaxis()
    right.legend()
    fig.tight_layout()
    path = img_dir / "packed_vs_vllm_0.6B.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def plots(runs: list[dict[str, Any]], img_dir: Path, labels: list[str]) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("the plots need matplotlib: pip install matplotlib") from exc
    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    side = [
        r for label in labels for r in runs if r.get("label") == label and r.get("shape") == "0.6B" and "workloads" in r
    ]

    fig, ax = plt.subplots(figsize=(9, 4))
    names = [DISPLAY.get(r["label"], r["label"]) for r in side]
    values = [_get(r, "bulk", "tokens_per_s") / 1e3 for r in side]
    ax.barh(names, values, color=["tab:green" if r["contender"] == "ours" else "tab:gray" for r in side])
    ax.axvline(450, color="tab:red", linestyle="--", label="target 450k")
    ax.set_xlabel("bulk throughput, thousand prompt tokens/s (0.6B, H100, bf16)")
    ax.invert_yaxis()
    ax.legend()
    fig.tight_layout()
    written.append(img_dir / "bulk_throughput_0.6B.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    rag = [r for r in side if "rag" in r["workloads"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    y = range(len(rag))
    ax.barh([i - 0.2 for i in y], [_get(r, "rag", "p50_ms") for r in rag], height=0.4, label="p50")
    ax.barh([i + 0.2 for i in y], [_get(r, "rag", "p99_ms") for r in rag], height=0.4, label="p99")
    ax.set_yticks(list(y), [DISPLAY.get(r["label"], r["label"]) for r in rag])
    ax.axvline(50, color="tab:red", linestyle="--", label="target p50 50 ms")
    ax.set_xscale("log")
    ax.set_xlabel("RAG call latency, ms (1 query x 100 documents, 0.6B, H100)")
    ax.invert_yaxis()
    ax.legend()
    fig.tight_layout()
    written.append(img_dir / "rag_latency_0.6B.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    sizes = []
    for _, label, shape in SIZE_ROWS[1:]:
        found = next(
            (r for r in runs if r.get("label") == label and r.get("shape") == shape and "workloads" in r), None
        )
        if found is not None:
            sizes.append((shape, found))
    if sizes:
        fig, ax = plt.subplots(figsize=(7, 4))
        bars = ax.bar(
            [s for s, _ in sizes], [_get(r, "bulk", "tokens_per_s") / 1e3 for _, r in sizes], color="tab:green"
        )
        for bar, (_, r) in zip(bars, sizes, strict=True):
            ax.annotate(
                f"MFU {_get(r, 'bulk', 'mfu') * 100:.0f}%",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
            )
        ax.set_ylabel("bulk thousand prompt tokens/s")
        ax.set_title("ours, new default settings, H100 bf16, ~287-token pairs")
        fig.tight_layout()
        written.append(img_dir / "model_sizes.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    variants = [
        r
        for r in runs
        if r.get("contender") == "ours"
        and r.get("shape") == "0.6B"
        and "bulk" in r.get("workloads", {})
        and r.get("plan") != "e"
    ]
    if len(variants) > 1:
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.barh(
            [r["label"] for r in variants], [_get(r, "bulk", "tokens_per_s") / 1e3 for r in variants], color="tab:blue"
        )
        ax.axvline(450, color="tab:red", linestyle="--", label="target 450k")
        ax.set_xlabel("bulk thousand tokens/s (0.6B)")
        ax.invert_yaxis()
        ax.legend()
        fig.tight_layout()
        written.append(img_dir / "engine_options_0.6B.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


CONCURRENT = ["ours_before", "ours", "vllm_serve", "ours_packed_d"]
CONCURRENT_DISPLAY = {
    "ours_packed_d": "ours, backend='packed' (calls combined)",
    "ours_before": "ours before (vllm.LLM behind a lock)",
    "ours": "ours after (AsyncLLM)",
    "vllm_serve": "vllm serve + our server backend",
}
#: issue 11's targets at 16 clients (0.6B, defaults)
CONCURRENT_TARGETS = {"pairs_per_s": 1300.0, "p50_ms": 350.0, "p99_ms": 700.0}


def _rounds(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return run.get("workloads", {}).get("concurrent", {}).get("rounds", {})


def concurrent_table(runs: list[dict[str, Any]]) -> str:
    """Per contender and client count: pairs/s, p50, p99 of 1 x 100-document calls (plan d)."""
    rows = ["| contender | clients x calls | pairs/s | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for label in CONCURRENT:
        for run in runs:
            if run.get("label") != label or not _rounds(run):
                continue
            for _, r in sorted(_rounds(run).items(), key=lambda item: int(item[0])):
                rows.append(
                    f"| {CONCURRENT_DISPLAY.get(label, label)} | {r['clients']} x {r['calls_per_client']} | "
                    f"{_fmt(r['pairs_per_s'], digits=0)} | {_fmt(r['p50_ms'], digits=0)} | "
                    f"{_fmt(r['p99_ms'], digits=0)} |"
                )
    serial = [
        f"| {CONCURRENT_DISPLAY.get(r['label'], r['label'])} | serial RAG (1 x {_get(r, 'rag', 'calls'):.0f}) | — | "
        f"{_fmt(_get(r, 'rag', 'p50_ms'))} | {_fmt(_get(r, 'rag', 'p99_ms'))} |"
        for label in CONCURRENT
        for r in runs
        if r.get("label") == label and "rag" in r.get("workloads", {})
    ]
    bulk = [
        f"| {CONCURRENT_DISPLAY.get(r['label'], r['label'])} | bulk score_pairs | "
        f"{_fmt(_get(r, 'bulk', 'pairs_per_s'), digits=0)} "
        f"({_fmt(_get(r, 'bulk', 'tokens_per_s'), 1e3, 0)}k tok/s) | — | — |"
        for label in CONCURRENT
        for r in runs
        if r.get("label") == label and "bulk" in r.get("workloads", {})
    ]
    t = CONCURRENT_TARGETS
    note = (
        f"\n\nTargets (0.6B, 16 clients): ≥ {t['pairs_per_s']:,.0f} pairs/s, p50 ≤ {t['p50_ms']:.0f} ms, "
        f"p99 ≤ {t['p99_ms']:.0f} ms; serial RAG p50 ≤ 120 ms; bulk ≥ 390k tokens/s."
    )
    return "\n".join(rows + serial + bulk) + note


def concurrent_plot(runs: list[dict[str, Any]], img_dir: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [(label, run) for label in CONCURRENT for run in runs if run.get("label") == label and _rounds(run)]
    if not found:
        return None
    img_dir.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, run in found:
        rounds = sorted(_rounds(run).values(), key=lambda r: r["clients"])
        clients = [r["clients"] for r in rounds]
        name = CONCURRENT_DISPLAY.get(label, label)
        left.plot(clients, [r["pairs_per_s"] for r in rounds], marker="o", label=name)
        (line,) = right.plot(clients, [r["p50_ms"] for r in rounds], marker="o", label=f"{name} p50")
        right.plot(
            clients,
            [r["p99_ms"] for r in rounds],
            marker="x",
            linestyle="--",
            color=line.get_color(),
            label=f"{name} p99",
        )
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients (1 query x 100 documents a call)")
    left.axhline(CONCURRENT_TARGETS["pairs_per_s"], color="tab:red", linestyle=":", label="target at 16 clients")
    left.set_ylabel("pairs/s")
    right.set_yscale("log")
    right.set_ylabel("per-call latency, ms")
    left.legend(fontsize=8)
    right.legend(fontsize=7)
    fig.tight_layout()
    path = img_dir / "concurrent_0.6B.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


SIDE_BY_SIDE = ["ours", "ours+async_scheduling", "original", "vllm_score", "transformers", "sentence_transformers"]
DISPLAY = {
    "ours": "ours, defaults at run time",
    "ours+async_scheduling": "ours, new defaults (+async_scheduling)",
    "original": "original script (generate + logprobs)",
    "vllm_score": "vLLM LLM.score + Qwen3 template",
    "transformers": "Qwen's transformers example",
    "sentence_transformers": "sentence-transformers CrossEncoder",
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--img-dir", type=Path, default=None)
    parser.add_argument("--tables", type=Path, default=None)
    parser.add_argument("--packed", action="store_true", help="only plan e's packed-vs-vLLM tables and plot")
    args = parser.parse_args()
    runs = load(args.results)
    if args.packed:
        text = "### Packed backend vs vLLM (plan e)\n\n" + packed_tables(runs)
        if args.tables:
            args.tables.write_text(text + "\n")
        print(text)
        for path in packed_plot(runs, args.img_dir) if args.img_dir else []:
            print(f"wrote {path}")
        return 0
    if all(run.get("plan") == "d" for run in runs):  # plan d alone: only its table and plot
        text = "### Many callers on one engine (issue 11)\n\n" + concurrent_table(runs)
        if args.tables:
            args.tables.write_text(text + "\n")
        print(text)
        if args.img_dir and (path := concurrent_plot(runs, args.img_dir)) is not None:
            print(f"wrote {path}")
        return 0
    text = "\n\n".join(
        [
            "### 0.6B, every contender\n\n" + contender_table(runs, "0.6B", SIDE_BY_SIDE),
            "### 0.6B, what each engine option buys\n\n" + variants_table(runs, "0.6B"),
            "### Model sizes (ours, default settings)\n\n" + sizes_table(runs),
            '### Long documents by chunks (long_documents="chunk")\n\n' + chunk_table(runs),
            "### Ceilings\n\n" + floor_table(runs),
        ]
    )
    if args.tables:
        args.tables.write_text(text + "\n")
    print(text)
    if args.img_dir:
        for path in plots(runs, args.img_dir, SIDE_BY_SIDE):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
