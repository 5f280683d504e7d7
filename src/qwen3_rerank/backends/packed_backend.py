"""The packed backend: each query's shared prefix computed once, every document packed without padding.

A call's prompts are grouped by their common leading ids (template + instruction + query for the builder's
prompts), packed into padding-free id streams of at most ``token_budget`` ids, and run through the
checkpoint's transformers modules in one forward per pack. A document's tail attends causally to its
prefix's keys and its own, at the positions of its own one-pair prompt, so each score is the canonical
prompt's score; only the last id of each prompt meets the final norm and the two LM-head rows.

On CUDA attention is variable-length FlashAttention (``torch.nn.attention.varlen.varlen_attn``); elsewhere
one ``scaled_dot_product_attention`` per segment. There is never a mask over the whole pack. On CUDA each pack
is padded to a bucketed shape (``packing.pad_pack``) and replayed as a captured CUDA graph (``packed_graphs``).

All device work runs on one thread (``packed_scheduler``): calls queue first come, first served, and each
round packs the calls at the head of the queue together.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from typing import Any

from ..errors import (
    BackendNotInstalledError,
    EngineError,
    ModelNotFoundError,
    NotAQwen3RerankerError,
    Qwen3RerankValueError,
)
from ..relevance import NO_TOKEN_ID, YES_TOKEN_ID, relevance_from_logits
from .base import check_torch_device
from .packed_scheduler import Scheduler
from .packing import Pack, group_by_shared_prefix, pack_groups, pad_pack

__all__ = ["PackedBackend"]

DEFAULT_TOKEN_BUDGET = 65536


class PackedBackend:
    """Shared-prefix, padding-free scoring on one device (one GPU, or the CPU).

    Args:
        model: local checkpoint directory or Hub name (loaded with ``AutoModelForCausalLM``).
        device: ``"cuda"`` when available, else ``"cpu"``.
        dtype: ``"auto"`` (the checkpoint's), ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        token_budget: ids computed per forward (a query's prefix counts once per pack); sets peak memory.
        attention: ``"auto"`` (varlen FlashAttention on CUDA with 16-bit weights, else SDPA per segment),
            ``"varlen"`` or ``"sdpa"``.
        compile: run the layer loop under ``torch.compile`` (dynamic shapes; the first calls compile).
        cuda_graphs: replay each pack's forward as a CUDA graph captured per padded shape (default: off; opt-in,
            see docs/benchmarks.md: on an H100 they cost bulk throughput and did not shorten a RAG call).
        pad_packs: pad every pack to a bucketed shape (default: when ``cuda_graphs``); on the CPU it runs the
            very layout the graphs replay, which is how the tests check that padding changes no score.
        max_batch_tokens: prompt ids of queued calls combined into one round (first come, first served; a
            call larger than this runs alone). Default: ``token_budget``.
        model_kwargs: extra ``AutoModelForCausalLM.from_pretrained`` arguments.
    """

    name = "packed"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        attention: str = "auto",
        compile: bool = False,
        cuda_graphs: bool | None = None,
        pad_packs: bool | None = None,
        max_batch_tokens: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM
        except ImportError as exc:
            raise BackendNotInstalledError("The packed backend needs torch: pip install qwen3-rerank[torch]") from exc
        from . import packed_layers

        if isinstance(token_budget, bool) or not isinstance(token_budget, int) or token_budget <= 0:
            raise Qwen3RerankValueError(f"token_budget must be a positive int (ids per forward), got {token_budget!r}")
        for flag, value in (("compile", compile), ("cuda_graphs", cuda_graphs), ("pad_packs", pad_packs)):
            if not isinstance(value, bool) and not (value is None and flag != "compile"):
                raise Qwen3RerankValueError(f"{flag} must be True or False, got {value!r}")
        if max_batch_tokens is not None and (
            isinstance(max_batch_tokens, bool) or not isinstance(max_batch_tokens, int) or max_batch_tokens <= 0
        ):
            raise Qwen3RerankValueError(
                f"max_batch_tokens must be a positive int (prompt ids per round) or None, got {max_batch_tokens!r}"
            )
        if attention not in ("auto", "varlen", "sdpa"):
            raise Qwen3RerankValueError(f"attention must be 'auto', 'varlen' or 'sdpa', got {attention!r}")
        self._torch = torch
        self._layers = packed_layers
        self.token_budget = token_budget
        check_torch_device(torch, device)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype: Any = dtype if dtype == "auto" else getattr(torch, str(dtype), None)
        if not (dtype == "auto" or (isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point)):
            raise Qwen3RerankValueError(f"dtype must be 'auto', 'bfloat16', 'float16' or 'float32', got {dtype!r}")
        if attention == "varlen" and self.device.type != "cuda":
            raise Qwen3RerankValueError(
                f"attention='varlen' needs a CUDA device, got {self.device}; pass attention='sdpa'"
            )
        if cuda_graphs and self.device.type != "cuda":
            raise Qwen3RerankValueError(
                f"cuda_graphs=True needs a CUDA device, got {self.device}; pass cuda_graphs=False"
            )
        # Off unless asked: measured on an H100 (bench plan g1), graphs + padding gave 328k bulk tokens/s vs 404k
        # without, and a RAG call of 75.1 vs 74.4 ms; each new bucket's capture costs more than replays save.
        self.cuda_graphs = bool(cuda_graphs)
        self.pad_packs = self.cuda_graphs if pad_packs is None else pad_packs
        if self.cuda_graphs and not self.pad_packs:
            raise Qwen3RerankValueError("cuda_graphs=True needs pad_packs=True (graphs replay bucketed shapes)")
        try:
            self.model: Any = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, **(model_kwargs or {}))
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"Cannot load model {model!r} with transformers: not a local model directory and not "
                "downloadable (offline, or a wrong name?). Pass a local Qwen3-Reranker directory."
            ) from exc
        config = self.model.config
        if getattr(config, "model_type", None) != "qwen3":
            raise NotAQwen3RerankerError(
                f"{model!r} is a {config.model_type!r} model, not a Qwen3 causal LM; "
                "use a Qwen/Qwen3-Reranker-0.6B/4B/8B checkpoint."
            )
        packed_layers.check_supported(config)
        model_object: Any = self.model  # transformers 5 types .to() too narrowly for a device
        model_object.to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype
        self.vocab_size = int(config.vocab_size)
        # Rows [yes, no] of the LM head (the embedding, when tied); the other 151k rows are never multiplied.
        self._yes_no = self.model.get_output_embeddings().weight[[YES_TOKEN_ID, NO_TOKEN_ID]].detach().float()
        self.max_prompt_tokens: int | None = int(config.max_position_embeddings)
        attend, self.attention, self.attention_description, padded_ok = packed_layers.make_attention(
            attention, self.device, self.dtype, config
        )
        if self.pad_packs and not padded_ok:
            # This torch's kernel mishandles the empty or key-only segments padding adds: score unpadded.
            warnings.warn(
                f"{self.attention_description} disagrees with SDPA on padded layouts; packs are not padded and "
                "CUDA graphs are off",
                RuntimeWarning,
                stacklevel=2,
            )
            self.pad_packs = self.cuda_graphs = False
        self._eager = self._forward_with(attend)
        self._forward = self._eager
        self.compiled = False
        if compile:
            compiled = torch.compile(
                self._forward_with(packed_layers.as_custom_op(attend, self.attention)), dynamic=True
            )
            self._forward = compiled
            self.compiled = True
        self._graphs: Any = None
        if self.cuda_graphs:
            from .packed_graphs import GraphRunner

            self._graphs = GraphRunner(self._forward)
        # Every forward runs on the scheduler's one thread: a torch module (and a CUDA graph) is not meant
        # for many threads.
        self.scheduler: Scheduler[Any] = Scheduler(self._launch, self._finish, max_batch_tokens or token_budget)

    def _forward_with(self, attend: Any) -> Any:
        model, packed_last_hidden = self.model, self._layers.packed_last_hidden

        def forward(layout: Any) -> Any:
            return packed_last_hidden(model, attend, layout)

        return forward

    # -- scoring ------------------------------------------------------------------------------------

    def _check(self, prompts: Sequence[Sequence[int]]) -> None:
        for i, prompt in enumerate(prompts):
            if len(prompt) == 0:
                raise Qwen3RerankValueError(f"prompt {i} is empty; build prompts with qwen3_rerank.PromptBuilder")
            lo, hi = min(prompt), max(prompt)
            if lo < 0 or hi >= self.vocab_size:
                raise Qwen3RerankValueError(
                    f"prompt ids must lie in [0, {self.vocab_size}), got {lo if lo < 0 else hi} in prompt {i}; "
                    "build prompts with qwen3_rerank.PromptBuilder"
                )

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        """Scores in input order. Calls queue first come, first served; calls waiting together are packed
        into the same forwards (their prompts mix in packs exactly as one call's do)."""
        self._check(prompts)
        if not prompts:
            return []
        future = self.scheduler.submit(prompts).future
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (Ctrl-C) while queued: its prompts leave the next round
            raise

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        """As [`score_prompts()`][qwen3_rerank.backends.packed_backend.PackedBackend.score_prompts], awaited; cancelling
        the awaiting task removes a queued call's prompts from the next round (one already running finishes and its
        scores are dropped)."""
        self._check(prompts)
        if not prompts:
            return []
        return await asyncio.wrap_future(self.scheduler.submit(prompts).future)

    # -- the device thread ---------------------------------------------------------------------------

    def _launch(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, list[int], int]:
        """Lay out and launch every pack of a round; the device runs them while the host moves on."""
        torch = self._torch
        order: list[int] = []
        groups = group_by_shared_prefix(prompts)
        groups.sort(key=lambda g: min(g.members))  # first come, first packed
        # A padded pack has at least one padding id; the budget keeps full packs inside their bucket.
        budget = self.token_budget - 1 if self.pad_packs and self.token_budget > 1 else self.token_budget
        with torch.inference_mode():
            logits = []
            for pack in pack_groups(prompts, groups, budget):
                logits.append(self._logits(pad_pack(pack) if self.pad_packs else pack)[: len(pack.scored)])
                order.extend(pack.scored)
            values = torch.cat(logits)
            if values.device.type == "cuda":
                host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
                host.copy_(values, non_blocking=True)
                done = torch.cuda.Event()
                done.record()
                return (host, done), order, len(prompts)
        return (values, None), order, len(prompts)

    def _finish(self, launched: tuple[Any, list[int], int]) -> list[float]:
        (values, done), order, count = launched
        if done is not None:
            done.synchronize()
        scores: list[float | None] = [None] * count
        for index, (z_yes, z_no) in zip(order, values.tolist(), strict=True):
            scores[index] = relevance_from_logits(z_yes, z_no)
        if any(s is None for s in scores):  # pragma: no cover - pack_groups places every prompt once
            raise EngineError("the packed backend lost a prompt while packing; please report this")
        return scores  # type: ignore[return-value]

    def _logits(self, pack: Pack) -> Any:
        layout = self._layers.device_layout(pack, self.device)
        try:
            hidden = self._graphs(layout) if self._graphs is not None else self._forward(layout)
        except Exception as exc:
            if isinstance(exc, self._torch.OutOfMemoryError) or not (self.compiled or self._graphs is not None):
                raise
            # torch.compile or graph capture failing on this torch/GPU must not cost the scores: the eager
            # loop computes the same.
            what = "CUDA graph capture" if self._graphs is not None else "torch.compile"
            warnings.warn(
                f"{what} failed ({type(exc).__name__}: {exc}); packed backend runs eagerly",
                RuntimeWarning,
                stacklevel=3,
            )
            self._forward, self.compiled, self._graphs = self._eager, False, None
            hidden = self._forward(layout)
        return hidden.float() @ self._yes_no.T

    def close(self) -> None:
        model = getattr(self, "model", None)
        if model is None:
            return
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None:
            scheduler.close()
        self.model = None
        self._forward = self._eager = self._graphs = None
        del model
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()
