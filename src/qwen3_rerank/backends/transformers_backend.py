"""The transformers backend: Qwen's reference computation, and the fallback when vLLM is absent.

Batches are sorted by length (less padding), left-padded, and only the last position's hidden state
meets only the two LM-head rows for "yes" and "no", upcast to float32. The score is the float64 sigmoid
of the two float32 logits' difference ([`qwen3_rerank.relevance_from_logits()`][qwen3_rerank.relevance_from_logits]), so
it reaches 1.0 only when the difference exceeds ~36.7 (a float32 sigmoid saturates at ~16.6). Identical prompts are
the caller's to send once ([`ScoringBackend`][qwen3_rerank.ScoringBackend] says why).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ..checkpoints import SEQUENCE_CLASSIFICATION, Checkpoint, not_a_qwen3_model
from ..errors import BackendNotInstalledError, ModelNotFoundError
from ..relevance import NO_TOKEN_ID, YES_TOKEN_ID, relevance_from_logits
from ..validation import check_count
from .base import ThreadedAsyncMixin, check_torch_device

__all__ = ["TransformersBackend"]

_PAD_ID = 151643  # <|endoftext|>, Qwen3's pad token; masked out, so its value never matters


class TransformersBackend(ThreadedAsyncMixin):
    name = "transformers"

    def __init__(
        self,
        model: str | Checkpoint,
        *,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
        except ImportError as exc:
            raise BackendNotInstalledError(
                "The transformers backend needs torch: pip install qwen3-rerank[torch]"
            ) from exc
        batch_size = check_count(batch_size, "batch_size")  # True is not a batch size (it is an int)
        check_torch_device(torch, device)
        self._torch = torch
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype: Any = dtype if dtype == "auto" else getattr(torch, dtype)
        # A Reranker hands over the checkpoint it resolved; a model name is read here.
        checkpoint = model if isinstance(model, Checkpoint) else Checkpoint.cached(model)
        model = checkpoint.model
        seq_cls = checkpoint.kind == SEQUENCE_CLASSIFICATION
        loader = AutoModelForSequenceClassification if seq_cls else AutoModelForCausalLM
        try:
            self.model: Any = loader.from_pretrained(model, dtype=torch_dtype, **(model_kwargs or {}))
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(
                f"Cannot load model {model!r} with transformers: not a local model directory and not "
                "downloadable (offline, or a wrong name?). Pass a local Qwen3-Reranker directory."
            ) from exc
        if getattr(self.model.config, "model_type", None) != "qwen3":
            raise not_a_qwen3_model(model, self.model.config.model_type)
        model_object: Any = self.model  # transformers 5 types .to() too narrowly for a device string
        model_object.to(self.device).eval()
        if seq_cls:
            # A converted checkpoint's one-row score head is already w_yes - w_no: score = sigmoid(w . h).
            self._yes_no = model_object.score.weight.detach().float()
        else:
            head = self.model.get_output_embeddings().weight
            # Rows [yes, no] of the LM head; the other 151k rows are never multiplied.
            self._yes_no = head[[YES_TOKEN_ID, NO_TOKEN_ID]].detach().float()
        self.max_prompt_tokens: int | None = int(self.model.config.max_position_embeddings)
        # One forward pass at a time: a torch module is not meant to be driven from many threads.
        self._lock = threading.Lock()

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        scores: list[float] = [0.0] * len(prompts)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                for i, score in zip(batch, self._score_batch([prompts[i] for i in batch]), strict=True):
                    scores[i] = score
        return scores

    def _score_batch(self, batch: list[Sequence[int]]) -> list[float]:
        torch = self._torch
        width = max(len(p) for p in batch)
        ids = torch.full((len(batch), width), _PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prompt in enumerate(batch):
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        # Positions count real tokens only, so a left-padded prompt is computed as if unpadded.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        with torch.inference_mode():
            hidden = self.model.model(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
            ).last_hidden_state[:, -1, :]
            logits = hidden.float() @ self._yes_no.T.to(hidden.device)
        return _relevances(logits)

    def close(self) -> None:
        model = getattr(self, "model", None)
        if model is None:
            return
        self.model = None
        del model
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


def _relevances(logits: Any) -> list[float]:
    """Scores from an (n, 2) float32 tensor of [z_yes, z_no], or an (n, 1) one of a converted checkpoint's
    score-head logit z (sigmoid(z) = relevance_from_logits(z, 0)): ``tolist`` gives the exact float32 values
    as Python floats, so the difference and the sigmoid are computed in float64."""
    return [relevance_from_logits(row[0], row[1] if len(row) == 2 else 0.0) for row in logits.cpu().tolist()]
