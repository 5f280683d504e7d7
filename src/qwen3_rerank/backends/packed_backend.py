"""The packed backend: each query's shared prefix computed once, every document packed without padding.

A call's prompts are grouped by their common leading ids (template + instruction + query for the builder's
prompts), packed into padding-free id streams of at most ``token_budget`` ids, and run through the
checkpoint's transformers modules in one forward per pack. A document's tail attends causally to its
prefix's keys and its own, at the positions of its own one-pair prompt, so each score is the canonical
prompt's score; only the last id of each prompt meets the final norm and the two LM-head rows.

On CUDA attention is variable-length FlashAttention (``torch.nn.attention.varlen.varlen_attn``); elsewhere
one ``scaled_dot_product_attention`` per segment. There is never a mask over the whole pack.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import (
    BackendNotInstalledError,
    EngineError,
    ModelNotFoundError,
    NotAQwen3RerankerError,
    Qwen3RerankValueError,
)
from ..relevance import NO_TOKEN_ID, YES_TOKEN_ID, relevance_from_logits
from .base import ThreadedAsyncMixin, check_torch_device
from .packing import Pack, group_by_shared_prefix, pack_groups

__all__ = ["PackedBackend"]

DEFAULT_TOKEN_BUDGET = 65536


@dataclass(eq=False)
class _Waiting:
    """One call's prompts, waiting for a forward; its scores or error once one has run."""

    prompts: Sequence[Sequence[int]]
    scores: list[float] | None = None
    error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.scores is not None or self.error is not None


class PackedBackend(ThreadedAsyncMixin):
    """Shared-prefix, padding-free scoring on one device (one GPU, or the CPU).

    Args:
        model: local checkpoint directory or Hub name (loaded with ``AutoModelForCausalLM``).
        device: ``"cuda"`` when available, else ``"cpu"``.
        dtype: ``"auto"`` (the checkpoint's), ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        token_budget: ids computed per forward (a query's prefix counts once per pack); sets peak memory.
        attention: ``"auto"`` (varlen FlashAttention on CUDA with 16-bit weights, else SDPA per segment),
            ``"varlen"`` or ``"sdpa"``.
        compile: run the layer loop under ``torch.compile`` (dynamic shapes; the first calls compile).
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
        if not isinstance(compile, bool):
            raise Qwen3RerankValueError(f"compile must be True or False, got {compile!r}")
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
        attend, self.attention, self.attention_description = packed_layers.make_attention(
            attention, self.device, self.dtype, config
        )
        self._eager = self._forward_with(attend)
        self._forward = self._eager
        self.compiled = False
        if compile:
            compiled = torch.compile(
                self._forward_with(packed_layers.as_custom_op(attend, self.attention)), dynamic=True
            )
            self._forward = compiled
            self.compiled = True
        self._lock = threading.Lock()  # one forward at a time: a torch module is not meant for many threads
        # Calls that arrive while a forward runs wait here; the next lock holder scores them all together.
        self._waiting: list[_Waiting] = []
        self._waiting_lock = threading.Lock()

    def _forward_with(self, attend: Any) -> Any:
        model, packed_last_hidden = self.model, self._layers.packed_last_hidden

        def forward(layout: Any) -> Any:
            return packed_last_hidden(model, attend, layout)

        return forward

    # -- scoring ------------------------------------------------------------------------------------

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        """Scores in input order. Concurrent calls share forwards: callers that arrive while one runs are
        packed together into the next (flat combining; their prompts mix in packs exactly as one call's do)."""
        for i, prompt in enumerate(prompts):
            if len(prompt) == 0:
                raise Qwen3RerankValueError(f"prompt {i} is empty; build prompts with qwen3_rerank.PromptBuilder")
        if not prompts:
            return []
        mine = _Waiting(prompts)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._lock:
            # Whoever held the lock before may have scored this call along with its own.
            if not mine.finished:
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                self._score_together(batch)
        if mine.error is not None:
            raise mine.error
        return mine.scores  # type: ignore[return-value]

    def _score_together(self, batch: list[_Waiting]) -> None:
        try:
            try:
                scores = self._score_now([prompt for waiting in batch for prompt in waiting.prompts])
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].error = exc
                    return
                # One caller's bad prompt (or a pack too large for memory) must not fail the others.
                for waiting in batch:
                    try:
                        waiting.scores = self._score_now(waiting.prompts)
                    except Exception as own:
                        waiting.error = own
                return
            start = 0
            for waiting in batch:
                waiting.scores = scores[start : start + len(waiting.prompts)]
                start += len(waiting.prompts)
        finally:
            for waiting in batch:
                if not waiting.finished:  # interrupted (KeyboardInterrupt) while scoring another's call
                    waiting.error = EngineError("scoring was interrupted in another thread; call again")

    def _score_now(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        """Score under the lock, in input order."""
        torch = self._torch
        order: list[int] = []
        with torch.inference_mode():
            logits = []
            # Packs are laid out lazily: the host lays out the next while the device runs this one; the
            # only sync is the final copy.
            for pack in pack_groups(prompts, group_by_shared_prefix(prompts), self.token_budget):
                logits.append(self._logits(pack))
                order.extend(pack.scored)
            values = torch.cat(logits).cpu().tolist()
        scores: list[float | None] = [None] * len(prompts)
        for index, (z_yes, z_no) in zip(order, values, strict=True):
            scores[index] = relevance_from_logits(z_yes, z_no)
        if any(s is None for s in scores):  # pragma: no cover - pack_groups places every prompt once
            raise EngineError("the packed backend lost a prompt while packing; please report this")
        return scores  # type: ignore[return-value]

    def _logits(self, pack: Pack) -> Any:
        layout = self._to_device(pack)
        try:
            hidden = self._forward(layout)
        except Exception as exc:
            if not self.compiled or isinstance(exc, self._torch.OutOfMemoryError):
                raise
            # torch.compile failing on this torch/GPU must not cost the scores: the eager loop computes the same.
            warnings.warn(
                f"torch.compile failed ({type(exc).__name__}: {exc}); packed backend runs eagerly",
                RuntimeWarning,
                stacklevel=3,
            )
            self._forward, self.compiled = self._eager, False
            hidden = self._forward(layout)
        return hidden.float() @ self._yes_no.T

    def _to_device(self, pack: Pack) -> Any:
        lo, hi = min(pack.token_ids), max(pack.token_ids)
        if lo < 0 or hi >= self.vocab_size:
            raise Qwen3RerankValueError(
                f"prompt ids must lie in [0, {self.vocab_size}), got {lo if lo < 0 else hi}; "
                "build prompts with qwen3_rerank.PromptBuilder"
            )
        return self._layers.device_layout(pack, self.device)

    def close(self) -> None:
        model = getattr(self, "model", None)
        if model is None:
            return
        self.model = None
        self._forward = self._eager = None
        del model
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()
