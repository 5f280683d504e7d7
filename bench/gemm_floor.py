"""The ceilings a reranker cannot beat on this card: its matrix products alone, at the real shapes.

For each architecture, times the four products of one layer the way vLLM fuses them (qkv, o, gate+up,
down) on 32768 tokens of random bf16 data, then scales to all layers: "linear-only tokens/s" is what an
engine would reach if everything else (attention, norms, RoPE, activations, scheduling) were free. Also
times causal attention (PyTorch SDPA, flash kernel) for 285- and 6000-token prompts, and an 8192^3
product to check the card's peak.

    python bench/gemm_floor.py --out gemm.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _time_ms(fn, reps: int = 20) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import torch

    from qwen3_rerank.random_checkpoint import SHAPES

    result: dict = {"label": "gemm_floor", "gemm": {}, "attention": {}}
    if not torch.cuda.is_available():
        result["errors"] = {"start": "no CUDA device: the floor is a GPU measurement"}
        args.out.write_text(json.dumps(result, indent=1))
        return 0
    dev = "cuda"
    torch.manual_seed(0)
    n = 8192
    square = [torch.randn(n, n, device=dev, dtype=torch.bfloat16) for _ in range(2)]
    ms = _time_ms(lambda: square[0] @ square[1])
    result["peak_check_tflops"] = 2 * n**3 / ms / 1e9
    square.clear()

    tokens = 32768
    for name in ("0.6B", "4B", "8B"):
        s = SHAPES[name]
        h, inter = s.hidden_size, s.intermediate_size
        q, kv = s.num_attention_heads * s.head_dim, s.num_key_value_heads * s.head_dim
        x = torch.randn(tokens, h, device=dev, dtype=torch.bfloat16)
        mats = {
            "qkv": torch.randn(h, q + 2 * kv, device=dev, dtype=torch.bfloat16) * 0.02,
            "o": torch.randn(q, h, device=dev, dtype=torch.bfloat16) * 0.02,
            "gate_up": torch.randn(h, 2 * inter, device=dev, dtype=torch.bfloat16) * 0.02,
            "down": torch.randn(inter, h, device=dev, dtype=torch.bfloat16) * 0.02,
        }
        inputs = {
            "qkv": x,
            "o": torch.randn(tokens, q, device=dev, dtype=torch.bfloat16),
            "gate_up": x,
            "down": torch.randn(tokens, inter, device=dev, dtype=torch.bfloat16),
        }
        per_layer_ms, detail = 0.0, {}
        for key, w in mats.items():
            inp = inputs[key]
            t = _time_ms(lambda inp=inp, w=w: inp @ w)
            flops = 2 * tokens * w.shape[0] * w.shape[1]
            detail[key] = {"ms": t, "tflops": flops / t / 1e9}
            per_layer_ms += t
        layer_s = per_layer_ms / 1e3 * s.num_hidden_layers
        result["gemm"][name] = {
            "tokens": tokens,
            "layers": s.num_hidden_layers,
            "per_layer": detail,
            "linear_tokens_per_s": tokens / layer_s,
        }
        del x, mats, inputs
        torch.cuda.empty_cache()

    # Causal attention of one layer for a step's worth of prompts (0.6B heads; GQA expanded).
    for seq, batch in ((285, 229), (6000, 10)):
        heads, d = 16, 128
        q = torch.randn(batch, heads, seq, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(batch, heads, seq, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn(batch, heads, seq, d, device=dev, dtype=torch.bfloat16)
        t = _time_ms(lambda q=q, k=k, v=v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
        flops = 4 * batch * heads * d * seq * seq / 2
        result["attention"][f"seq{seq}"] = {
            "batch": batch,
            "ms_per_layer": t,
            "tflops": flops / t / 1e9,
            "us_per_token_per_layer": t * 1e3 / (batch * seq),
        }
        del q, k, v
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v.get("linear_tokens_per_s") for k, v in result["gemm"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
