"""Random-weight checkpoints shaped like Qwen3-Reranker, with the real Qwen3 tokenizer.

Tests, examples and benchmarks run without network access, so they cannot download the real weights.
Throughput does not depend on weight values and exactness tests only need *some* fixed weights, so a
seeded random checkpoint of the real architecture (or a tiny one) stands in for the model.
"""

from __future__ import annotations

import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import BackendNotInstalledError, Qwen3RerankFileNotFoundError, Qwen3RerankValueError

__all__ = ["SHAPES", "CheckpointShape", "write_random_checkpoint", "write_seq_cls_checkpoint"]

_TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "tokenizer.json")


@dataclass(frozen=True, slots=True)
class CheckpointShape:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    tie_word_embeddings: bool
    initializer_range: float = 0.02


SHAPES: dict[str, CheckpointShape] = {
    # vLLM's CPU attention needs head_dim >= 64; the wide init spreads scores over (0, 1) so that a
    # one-token change in the prompt moves a score by far more than test tolerances.
    "tiny": CheckpointShape(128, 2, 2, 1, 64, 256, True, initializer_range=0.25),
    "0.6B": CheckpointShape(1024, 28, 16, 8, 128, 3072, True),
    "4B": CheckpointShape(2560, 36, 32, 8, 128, 9728, True),
    "8B": CheckpointShape(4096, 36, 32, 8, 128, 12288, False),
}


def _fill_deterministically(model: Any, seed: int, std: float) -> None:
    """Weights from a generator seeded per parameter name: the same bytes whatever the transformers
    version's own init order, so golden scores stay valid across upgrades."""
    import torch

    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.fill_(1.0)
                continue
            generator = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32) * std
            param.copy_(values.to(param.device, param.dtype))


def write_random_checkpoint(
    destination: str | Path,
    tokenizer_dir: str | Path,
    *,
    shape: str = "tiny",
    dtype: str = "float32",
    seed: int = 0,
    device: str = "cpu",
) -> Path:
    """Write a seeded random Qwen3ForCausalLM checkpoint plus tokenizer files; return its directory.

    ``shape`` is one of [`SHAPES`][qwen3_rerank.random_checkpoint.SHAPES]; ``dtype`` is "float32" or "bfloat16";
    ``device`` may be "cuda" to initialise large shapes quickly.
    """
    if shape not in SHAPES:
        raise Qwen3RerankValueError(f"shape must be one of {sorted(SHAPES)}, got {shape!r}")
    tokenizer_dir = Path(tokenizer_dir)
    if not (tokenizer_dir / "vocab.json").is_file():
        raise Qwen3RerankFileNotFoundError(
            f"{tokenizer_dir} holds no Qwen3 tokenizer (vocab.json, merges.txt, tokenizer_config.json)"
        )
    try:
        import torch
        from transformers import Qwen3Config, Qwen3ForCausalLM
    except ImportError as exc:
        raise BackendNotInstalledError("pip install qwen3-rerank[torch]  (random checkpoints need torch)") from exc

    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    # A dict, because the config's keyword arguments differ between transformers 4 and 5 (rope_theta).
    settings: dict[str, Any] = {
        "vocab_size": 151669,
        "max_position_embeddings": 40960,
        "rope_theta": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        **asdict(SHAPES[shape]),
    }
    config = Qwen3Config(**settings)
    config.architectures = ["Qwen3ForCausalLM"]
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    with torch.device(device):
        model: Any = Qwen3ForCausalLM(config)
    _fill_deterministically(model, seed, config.initializer_range)
    model = model.to(torch_dtype)
    model.save_pretrained(destination, safe_serialization=True)
    for name in _TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copyfile(tokenizer_dir / name, destination / name)
    return destination


def write_seq_cls_checkpoint(source: str | Path, destination: str | Path) -> Path:
    """Convert a Qwen3-Reranker causal-LM checkpoint into a one-logit ``Qwen3ForSequenceClassification``
    one, as the sentence-transformers ``*-seq-cls`` conversions do: score head w = w_yes - w_no.

    The transformer weights are copied unchanged, so both checkpoints give the same scores.
    """
    try:
        import torch
        from transformers import Qwen3ForCausalLM, Qwen3ForSequenceClassification
    except ImportError as exc:
        raise BackendNotInstalledError("pip install qwen3-rerank[torch]  (checkpoint conversion needs torch)") from exc
    from .relevance import NO_TOKEN_ID, YES_TOKEN_ID

    source, destination = Path(source), Path(destination)
    causal = Qwen3ForCausalLM.from_pretrained(source, dtype="auto")
    config = causal.config
    config.architectures = ["Qwen3ForSequenceClassification"]
    config.num_labels = 1
    config.pad_token_id = 151643
    classifier: Any = Qwen3ForSequenceClassification(config)  # transformers 5 types .to() too narrowly for a dtype
    classifier = classifier.to(causal.dtype)
    classifier.model.load_state_dict(causal.model.state_dict())
    head = causal.get_output_embeddings().weight
    with torch.no_grad():
        classifier.score.weight.copy_((head[YES_TOKEN_ID] - head[NO_TOKEN_ID]).unsqueeze(0))
    classifier.save_pretrained(destination, safe_serialization=True)
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, destination / name)
    return destination
