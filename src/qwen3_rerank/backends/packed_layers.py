"""The packed forward: the checkpoint's own Qwen3 modules, driven over one padding-free id stream.

Nothing here defines a model: embeddings, rotary tables, projections, q/k norms, MLPs and norms are the
transformers modules of the loaded checkpoint; only the loop over layers and the attention call are ours,
because the stream's segments attend to gathered keys (a tail to its prefix's keys and its own), which no
transformers attention implementation expresses without a T x T mask.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import EngineError, Qwen3RerankValueError

__all__ = [
    "Attention",
    "DeviceLayout",
    "as_custom_op",
    "check_supported",
    "device_layout",
    "make_attention",
    "packed_last_hidden",
]

#: (q, k, v, cu_q, cu_k, max_q, max_k) -> out; tensors [tokens, heads, head_dim]; causal aligned so that a
#: segment's queries are its last keys.
Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int, int], torch.Tensor]


@dataclass(frozen=True, slots=True)
class DeviceLayout:
    """A [`Pack`][qwen3_rerank.backends.packing.Pack] as device tensors."""

    ids: torch.Tensor
    positions: torch.Tensor
    key_index: torch.Tensor
    cu_q: torch.Tensor
    cu_k: torch.Tensor
    max_q: int
    max_k: int
    last: torch.Tensor

    @property
    def shape_key(self) -> tuple[int, ...]:
        """Everything a captured CUDA graph fixes: the tensors' lengths and the kernel's bounds."""
        return (len(self.ids), len(self.key_index), len(self.cu_q), len(self.last), self.max_q, self.max_k)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.ids, self.positions, self.key_index, self.cu_q, self.cu_k, self.last)


def _cumulative(lengths: list[int]) -> list[int]:
    out, total = [0], 0
    for n in lengths:
        total += n
        out.append(total)
    return out


def _upload(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    # Pinned host memory lets the copy run asynchronously, behind the previous pack's kernels.
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t


def device_layout(pack: Any, device: torch.device) -> DeviceLayout:
    """Expand a pack's per-segment lengths into the per-id tensors the forward reads, on the device: the host
    sends the ids and a few numbers per segment, never a list per id."""
    q_lens, key_lens = pack.query_lens, pack.key_lens
    cu_q_host, cu_k_host = _cumulative(q_lens), _cumulative(key_lens)
    last = pack.last_index
    # Columns of one small upload: per-segment numbers, then the scored rows.
    seg = _upload(
        torch.tensor(
            [
                *q_lens,
                *key_lens,
                *pack.first_position,
                *pack.prefix_start,
                *pack.prefix_len,
                *cu_q_host,
                *cu_k_host,
                *last,
            ],
            dtype=torch.long,
        ),
        device,
    )
    n = len(q_lens)
    q_len, k_len, pos0, p_start, p_len = (seg[i * n : (i + 1) * n] for i in range(5))
    cu_q, cu_k = seg[5 * n : 6 * n + 1], seg[6 * n + 1 : 7 * n + 2]
    tokens, keys = cu_q_host[-1], cu_k_host[-1]
    segments = torch.arange(n, device=device)
    # Key slot j of segment s: the prefix's ids first, then the segment's own.
    owner_k = torch.repeat_interleave(segments, k_len, output_size=keys)
    local = torch.arange(keys, device=device) - cu_k[owner_k]
    own = local - p_len[owner_k]
    key_index = torch.where(own < 0, p_start[owner_k] + local, cu_q[owner_k] + own)
    owner = torch.repeat_interleave(segments, q_len, output_size=tokens)
    positions = pos0[owner] + torch.arange(tokens, device=device) - cu_q[owner]
    max_q, max_k = pack.bounds or (max(q_lens), max(key_lens))
    return DeviceLayout(
        ids=_upload(torch.frombuffer(pack.token_ids, dtype=torch.long), device),
        positions=positions,
        key_index=key_index,
        cu_q=cu_q.to(torch.int32),
        cu_k=cu_k.to(torch.int32),
        max_q=max_q,
        max_k=max_k,
        last=seg[7 * n + 2 :],
    )


def check_supported(config: Any) -> None:
    """Refuse configurations the loop does not compute exactly (it would silently score something else)."""
    layer_types = getattr(config, "layer_types", None) or []
    if getattr(config, "use_sliding_window", False) or any(t != "full_attention" for t in layer_types):
        raise Qwen3RerankValueError(
            "the packed backend computes full causal attention only; this checkpoint uses sliding-window "
            "layers. Use backend='transformers' or 'vllm'."
        )


def _sdpa_segments(n_rep: int, scale: float) -> Attention:
    """One scaled_dot_product_attention call per segment: the CPU path (and a GPU fallback)."""

    def attend(q, k, v, cu_q, cu_k, max_q, max_k):
        out = torch.empty_like(q)
        bounds_q, bounds_k = cu_q.tolist(), cu_k.tolist()
        for s in range(len(bounds_q) - 1):
            qs, qe, ks, ke = bounds_q[s], bounds_q[s + 1], bounds_k[s], bounds_k[s + 1]
            n_q, n_k = qe - qs, ke - ks
            if n_q == 0:  # an empty or key-only segment (a padded pack's): no query reads anything
                continue
            qh, kh, vh = (t.transpose(0, 1) for t in (q[qs:qe], k[ks:ke], v[ks:ke]))
            # SDPA's is_causal aligns to the first key; a tail's queries are its last n_q keys.
            mask = None if n_q == n_k else torch.ones(n_q, n_k, dtype=torch.bool, device=q.device).tril(n_k - n_q)
            out[qs:qe] = F.scaled_dot_product_attention(
                qh, kh, vh, attn_mask=mask, is_causal=mask is None, scale=scale, enable_gqa=n_rep > 1
            ).transpose(0, 1)
        return out

    return attend


def _varlen(n_rep: int, scale: float) -> tuple[Attention, str]:
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    kwargs: dict[str, Any] = {}
    if "window_size" in params:  # torch >= 2.10: causal is the window (-1, 0)
        kwargs["window_size"] = (-1, 0)
    elif "is_causal" in params:  # torch 2.9
        kwargs["is_causal"] = True
    else:
        raise EngineError(f"torch {torch.__version__}: varlen_attn{inspect.signature(varlen_attn)} has no causal flag")
    if "scale" in params:
        kwargs["scale"] = scale
    gqa = "enable_gqa" in params
    if gqa and n_rep > 1:
        kwargs["enable_gqa"] = True

    def attend(q, k, v, cu_q, cu_k, max_q, max_k):
        if n_rep > 1 and not gqa:  # q head h reads kv head h // n_rep, as transformers' repeat_kv
            k, v = k.repeat_interleave(n_rep, dim=1), v.repeat_interleave(n_rep, dim=1)
        return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **kwargs)

    heads = "enable_gqa" if gqa and n_rep > 1 else ("kv heads repeated" if n_rep > 1 else "no GQA")
    return attend, f"torch varlen_attn({', '.join(f'{k}={v}' for k, v in kwargs.items())}; {heads})"


def _agrees_with_sdpa(
    attend: Attention,
    reference: Attention,
    device: torch.device,
    dtype: torch.dtype,
    heads: int,
    kv_heads: int,
    head_dim: int,
    padded: bool = True,
) -> bool:
    """A small layout with shorter query than key segments: catches a kernel whose causal mask is aligned to the
    first key (that would attend tails to the wrong keys) before it scores anything. It ends as a padded
    pack does (packing.pad_pack): a key-only segment and an empty one, which must not disturb the others."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    q_lens, k_lens = ([5, 3, 1, 7, 0, 0], [5, 8, 9, 7, 4, 0]) if padded else ([5, 3, 1, 7], [5, 8, 9, 7])
    rand = lambda n, h: torch.randn(n, h, head_dim, generator=gen).to(device, dtype)  # noqa: E731
    q, k, v = rand(sum(q_lens), heads), rand(sum(k_lens), kv_heads), rand(sum(k_lens), kv_heads)
    cu = lambda lens: torch.tensor([0, *torch.tensor(lens).cumsum(0).tolist()], dtype=torch.int32, device=device)  # noqa: E731
    args = (q, k, v, cu(q_lens), cu(k_lens), max(q_lens), max(k_lens))
    got, want = attend(*args).float(), reference(*args).float()
    return bool(torch.allclose(got, want, atol=2e-2, rtol=2e-2))


def make_attention(
    kind: str, device: torch.device, dtype: torch.dtype, config: Any
) -> tuple[Attention, str, str, bool]:
    """The attention for ``kind`` ('auto', 'varlen', 'sdpa'): (function, kind used, description, whether it
    computes padded packs' layouts exactly: key-only and empty segments)."""
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    n_rep, scale = heads // kv_heads, head_dim**-0.5
    flash_dtype = dtype in (torch.float16, torch.bfloat16)
    if kind == "auto":
        kind = "varlen" if device.type == "cuda" and flash_dtype else "sdpa"
    if kind == "sdpa":
        return _sdpa_segments(n_rep, scale), "sdpa", "scaled_dot_product_attention once per segment", True
    if kind != "varlen":
        raise Qwen3RerankValueError(f"attention must be 'auto', 'varlen' or 'sdpa', got {kind!r}")
    if device.type != "cuda" or not flash_dtype:
        raise Qwen3RerankValueError(
            f"attention='varlen' needs a CUDA device and bfloat16/float16 weights (got {device.type}, {dtype}); "
            "pass dtype='bfloat16', or attention='sdpa'."
        )
    try:
        attend, description = _varlen(n_rep, scale)
    except ImportError as exc:
        raise Qwen3RerankValueError(
            f"torch {torch.__version__} has no torch.nn.attention.varlen (torch >= 2.9 does); "
            "upgrade torch, or pass attention='sdpa'."
        ) from exc
    reference, shape = _sdpa_segments(n_rep, scale), (device, dtype, heads, kv_heads, head_dim)
    if not _agrees_with_sdpa(attend, reference, *shape, padded=False):
        raise EngineError(
            f"{description} disagrees with scaled_dot_product_attention on a prefix-sharing layout in torch "
            f"{torch.__version__}; pass engine_options={{'attention': 'sdpa'}} (exact, slower)."
        )
    return attend, "varlen", description, _agrees_with_sdpa(attend, reference, *shape, padded=True)


_CUSTOM_OPS: dict[str, Any] = {}


def as_custom_op(attend: Attention, name: str) -> Attention:
    """The attention as one opaque op, so torch.compile traces the whole layer loop without graph breaks."""
    key = f"qwen3_rerank::packed_attention_{name}_{len(_CUSTOM_OPS)}"
    op = torch.library.custom_op(key, mutates_args=())(_typed(attend))
    op.register_fake(lambda q, k, v, cu_q, cu_k, max_q, max_k: torch.empty_like(q))
    _CUSTOM_OPS[key] = op
    return op


def _typed(attend: Attention) -> Callable[..., torch.Tensor]:
    def packed_attention(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cu_q: torch.Tensor,
        cu_k: torch.Tensor,
        max_q: int,
        max_k: int,
    ) -> torch.Tensor:
        return attend(q, k, v, cu_q, cu_k, max_q, max_k).contiguous()

    return packed_attention


def packed_last_hidden(model: Any, attend: Attention, layout: DeviceLayout) -> torch.Tensor:
    """Final-normed hidden states at each scored prompt's last id, [scored, hidden].

    The last layer's attention output, residual and MLP are computed only at those rows (its queries,
    keys and values still at every id, with the same layout as every other layer); nothing after it reads
    the other positions.
    """
    from transformers.models.qwen3.modeling_qwen3 import rotate_half

    base = model.model
    layers = list(base.layers)
    h = base.embed_tokens(layout.ids)
    cos, sin = (t[0][:, None, :] for t in base.rotary_emb(h, layout.positions[None]))  # [T, 1, head_dim]
    tokens = h.shape[0]
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        head_dim = attn.head_dim
        x = layer.input_layernorm(h)
        q = attn.q_norm(attn.q_proj(x).view(tokens, -1, head_dim))
        k = attn.k_norm(attn.k_proj(x).view(tokens, -1, head_dim))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        v = attn.v_proj(x).view(tokens, -1, head_dim)
        keys = layout.key_index
        o = attend(q, k[keys], v[keys], layout.cu_q, layout.cu_k, layout.max_q, layout.max_k)
        if i == len(layers) - 1:
            o, h = o[layout.last], h[layout.last]
        h = h + attn.o_proj(o.reshape(o.shape[0], -1))
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return base.norm(h)
