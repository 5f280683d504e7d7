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

from metrics import max_abs_diff

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
    by_label = {r["label"]: r for r in runs if r.get("shape") == shape and "workloads" in r}
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
        if r.get("contender") == "ours" and r.get("shape") == "0.6B" and "bulk" in r.get("workloads", {})
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


CONCURRENT = ["ours_before", "ours", "vllm_serve"]
CONCURRENT_DISPLAY = {
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
        for label in CONCURRENT for r in runs if r.get("label") == label and "rag" in r.get("workloads", {})
    ]
    bulk = [
        f"| {CONCURRENT_DISPLAY.get(r['label'], r['label'])} | bulk score_pairs | "
        f"{_fmt(_get(r, 'bulk', 'pairs_per_s'), digits=0)} "
        f"({_fmt(_get(r, 'bulk', 'tokens_per_s'), 1e3, 0)}k tok/s) | — | — |"
        for label in CONCURRENT for r in runs if r.get("label") == label and "bulk" in r.get("workloads", {})
    ]
    t = CONCURRENT_TARGETS
    note = (f"\n\nTargets (0.6B, 16 clients): ≥ {t['pairs_per_s']:,.0f} pairs/s, p50 ≤ {t['p50_ms']:.0f} ms, "
            f"p99 ≤ {t['p99_ms']:.0f} ms; serial RAG p50 ≤ 120 ms; bulk ≥ 390k tokens/s.")
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
        right.plot(clients, [r["p99_ms"] for r in rounds], marker="x", linestyle="--", color=line.get_color(),
                   label=f"{name} p99")
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
    args = parser.parse_args()
    runs = load(args.results)
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
