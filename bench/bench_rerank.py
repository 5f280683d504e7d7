"""Benchmark driver: every contender in its own process, one after another, results as JSON.

    python bench/bench_rerank.py --model .cache/tiny --quick            # CPU smoke check, all contenders
    python bench/bench_rerank.py --plan a --models-root /tmp --out-dir /tmp/benchres --merge-to $OUT/a.json

Each run's worker writes its own JSON; the driver adds the peak GPU memory that ``nvidia-smi`` saw while
the run's processes lived (sampled every 100 ms: vLLM allocates in its engine process, where
``torch.cuda.max_memory_allocated`` of the caller sees nothing), merges every result into one file
after each run, and skips runs that would not finish before ``--deadline-s``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from plans import MODEL_DIRS, PLANS, Run  # noqa: E402


class GpuMemorySampler:
    """``nvidia-smi`` in loop mode; absent on CPU machines, where it records nothing."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        if shutil.which("nvidia-smi"):
            with open(log, "wb") as sink:
                self.proc = subprocess.Popen(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "100"],
                    stdout=sink,
                    stderr=subprocess.DEVNULL,
                )

    def stop(self) -> dict[str, Any]:
        if self.proc is None:
            return {}
        self.proc.terminate()
        self.proc.wait(timeout=10)
        values = [int(line) for line in self.log.read_text().split() if line.strip().isdigit()]
        return {"nvidia_smi_peak_mib": max(values, default=None), "nvidia_smi_samples": len(values)}


def _model_for(run: Run, args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    return str(Path(args.models_root) / MODEL_DIRS[run["shape"]])


def _wait_for_model(model: str, seconds: float) -> bool:
    """Checkpoints are written in the background on the GPU machine; ``.done`` marks a finished one."""
    marker = Path(model) / ".done"
    if not (Path(model).parent / ".writing-models").exists() and (Path(model) / "config.json").exists():
        return True
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if marker.exists():
            return True
        time.sleep(2)
    return marker.exists()


def _command(run: Run, model: str, out: Path, args: argparse.Namespace) -> list[str]:
    if run.get("script") == "gemm_floor":
        return [sys.executable, str(HERE / "gemm_floor.py"), "--out", str(out)] + (["--quick"] if args.quick else [])
    cmd = [sys.executable, str(HERE / "worker.py"), run["contender"], "--model", model, "--out", str(out)]
    cmd += ["--label", run["label"], "--workloads", run.get("workloads", "bulk,rag,long")]
    if run.get("extras"):
        cmd += ["--extras", run["extras"]]
    for key in ("reps", "rag_calls", "rag_warmup"):
        if key in run:
            cmd += [f"--{key.replace('_', '-')}", str(run[key])]
    if run.get("engine_options"):
        cmd += ["--engine-options", json.dumps(run["engine_options"])]
    if args.quick:
        cmd += ["--quick", "--reps", "1", "--rag-calls", "3", "--rag-warmup", "1"]
    return cmd


def _run_one(run: Run, args: argparse.Namespace, remaining: float, log) -> dict[str, Any]:
    model = _model_for(run, args) if "shape" in run else ""
    tag = f"{run['label']}@{run.get('shape', '-')}"
    out = Path(args.out_dir) / f"{args.plan}-{tag.replace('@', '-').replace('+', 'plus-')}.json"
    if "shape" in run and not _wait_for_model(model, min(remaining - run["est_s"], 600)):
        return {"label": run["label"], "shape": run.get("shape"), "skipped": f"model {model} not ready"}
    cmd = _command(run, model, out, args)
    log.write(f"\n===== {tag}: {' '.join(cmd)}\n")
    log.flush()
    sampler = GpuMemorySampler(Path(args.out_dir) / "nvidia-smi.log")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    try:
        proc.wait(timeout=max(1.0, remaining))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # The worker's process group holds vLLM's engine processes too: end them before the next run.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    wall = time.monotonic() - start
    memory = sampler.stop()
    result: dict[str, Any] = {"label": run["label"], "shape": run.get("shape")}
    if out.exists():
        result.update(json.loads(out.read_text()))
    result.update({"shape": run.get("shape"), "wall_s": wall, "returncode": proc.returncode, "gpu_memory": memory})
    if timed_out:
        result["timed_out"] = True
    out.write_text(json.dumps(result, indent=1))
    return result


def _summary_line(r: dict[str, Any]) -> str:
    w = r.get("workloads", {})
    bulk, rag, long_ = w.get("bulk", {}), w.get("rag", {}), w.get("long", {})
    parts = [f"{r['label']:<24} {r.get('shape')!s:<5}"]
    if "skipped" in r:
        return parts[0] + f" skipped: {r['skipped']}"
    if "gemm" in r:
        ceilings = (f"{k}: {v['linear_tokens_per_s'] / 1e3:.0f}k tok/s linear-only" for k, v in r["gemm"].items())
        return parts[0] + " " + "; ".join(ceilings)
    parts.append(f"start {r.get('start_s', float('nan')):6.1f}s")
    nan = float("nan")
    parts.append(f"bulk {bulk.get('tokens_per_s', nan) / 1e3:7.1f}k tok/s mfu {bulk.get('mfu', nan):.2f}")
    parts.append(f"rag p50 {rag.get('p50_ms', float('nan')):7.1f} p99 {rag.get('p99_ms', float('nan')):7.1f} ms")
    parts.append(f"long {long_.get('tokens_per_s', float('nan')) / 1e3:7.1f}k tok/s")
    if "long_chunk" in w:
        chunked = w["long_chunk"]
        parts.append(f"chunk {chunked['docs_per_s']:.1f} docs/s {chunked['tokens_per_s'] / 1e3:.1f}k tok/s")
    parts.append(f"mem {r.get('gpu_memory', {}).get('nvidia_smi_peak_mib')} MiB")
    if r.get("errors"):
        parts.append(f"errors {sorted(r['errors'])}")
    if r.get("timed_out"):
        parts.append("TIMED OUT")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", default=None, help=f"one of {sorted(PLANS)} (default: quick with --quick)")
    parser.add_argument("--model", default=None, help="use this checkpoint for every run (e.g. the tiny one on CPU)")
    parser.add_argument("--models-root", default="/tmp", help="where m06, m4, m8 live")
    parser.add_argument("--quick", action="store_true", help="tiny workloads: a smoke check that every path runs")
    parser.add_argument("--only", default="", help="comma-separated labels (label@shape also works)")
    parser.add_argument("--out-dir", default="bench/out")
    parser.add_argument("--merge-to", default=None, help="write all results of this plan to one JSON file")
    parser.add_argument("--log", default=None, help="workers' output (default: OUT_DIR/PLAN.log)")
    parser.add_argument("--deadline-s", type=float, default=3600.0, help="stop starting runs after this many seconds")
    args = parser.parse_args(argv)
    args.plan = args.plan or ("quick" if args.quick else "a")
    if not args.model and args.quick:
        parser.error("--quick needs --model (e.g. .cache/tiny)")

    os.makedirs(args.out_dir, exist_ok=True)
    deadline = time.monotonic() + args.deadline_s
    only = {x for x in args.only.split(",") if x}
    runs = [r for r in PLANS[args.plan] if not only or r["label"] in only or f"{r['label']}@{r.get('shape')}" in only]
    # Runs an earlier phase had no time for go first, so that the side-by-side set completes.
    pending_path = Path(args.out_dir) / "pending.json"
    if pending_path.exists() and not only:
        runs = json.loads(pending_path.read_text()) + runs
        pending_path.unlink()
    pending: list[Run] = []
    merged: dict[str, Any] = {"plan": args.plan, "quick": args.quick, "runs": []}
    log_path = Path(args.log or Path(args.out_dir) / f"{args.plan}.log")
    with open(log_path, "a") as log:
        for run in runs:
            remaining = deadline - time.monotonic() - 3.0
            if run["est_s"] > remaining and not args.quick:
                why = f"needs ~{run['est_s']} s, {remaining:.0f} s left: moved to the next phase"
                result = {"label": run["label"], "shape": run.get("shape"), "skipped": why}
                pending.append(run)
                pending_path.write_text(json.dumps(pending))
            else:
                result = _run_one(run, args, remaining, log)
            merged["runs"].append(result)
            print(_summary_line(result), flush=True)
            if args.merge_to:
                Path(args.merge_to).write_text(json.dumps(merged, indent=1))
    failed = [r["label"] for r in merged["runs"] if r.get("errors") or r.get("returncode") not in (0, None)]
    if failed:
        print(f"runs with errors: {failed} (details in the JSON and {log_path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
