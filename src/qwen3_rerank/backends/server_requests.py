"""Planning the HTTP requests of a batch: which prompts go in which body, for each endpoint.

``/classify`` takes the token ids as they are. ``/rerank`` and ``/score`` take text rendered by the
server's ``--chat-template`` (``chat_template()``), so each prompt
is split back into its (instruction, query, document) and grouped the way those endpoints need.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EngineError
from ..prompt import (
    DEFAULT_INSTRUCTION,
    PREFIX,
    SUFFIX,
    added_token_spellings,
    canonical_prompt,
    split_canonical_prompt,
)

__all__ = ["Job", "chat_template", "plan_requests", "prompt_texts"]


def chat_template() -> str:
    """The Qwen3-Reranker prompt as a chat template, for ``vllm serve --chat-template`` (``/rerank``, ``/score``).

    It is [`canonical_prompt()`][qwen3_rerank.canonical_prompt] with Jinja expressions for its parts. Unlike vLLM's
    example template, an empty instruction stays empty. The trailing ``{{ '' }}`` keeps Jinja from dropping the
    template's final newline, which is part of the prompt.
    """
    query = "{{ (messages | selectattr('role', 'eq', 'query') | first).content }}"
    document = "{{ (messages | selectattr('role', 'eq', 'document') | first).content }}"
    instruction = f"{{{{ instruction if instruction is defined else {json.dumps(DEFAULT_INSTRUCTION)} }}}}"
    return canonical_prompt(instruction, query, document) + "{{ '' }}"


@dataclass(frozen=True, slots=True)
class Job:
    """One HTTP request: the prompts' positions in the caller's list and the body that scores them."""

    positions: tuple[int, ...]
    path: str
    body: dict[str, Any]


def prompt_texts(tokenizer: Any, prompt: Sequence[int], endpoint: str) -> tuple[str, str, str]:
    """(instruction, query, document) whose rendering through
    ``chat_template()`` is ``prompt``'s text."""
    text = tokenizer.decode(list(prompt), skip_special_tokens=False)
    parts = split_canonical_prompt(text)
    if parts is None:
        if not (text.startswith(PREFIX) and text.endswith(SUFFIX)):
            raise EngineError("endpoint 'rerank'/'score' got a prompt that PromptBuilder did not make")
        raise EngineError(
            "the instruction and query fill max_length, leaving the document no token; endpoint "
            f"{endpoint!r} cannot send that prompt as text. Raise max_length or use endpoint='classify'."
        )
    return parts


def plan_requests(
    endpoint: str,
    prompts: Sequence[Sequence[int]],
    *,
    batch_size: int,
    served_model_name: str | None,
    tokenizer: Any = None,
) -> list[Job]:
    """The requests that score ``prompts``, at most ``batch_size`` prompts each.

    Warns (at the caller of ``ServerBackend.score_prompts``) when a text endpoint would turn user text into
    control tokens.
    """
    size = batch_size
    model_field: dict[str, Any] = {} if served_model_name is None else {"model": served_model_name}
    if endpoint == "classify":
        return [
            Job(
                positions=tuple(range(start, min(start + size, len(prompts)))),
                path="/classify",
                body={
                    **model_field,
                    "input": [list(map(int, p)) for p in prompts[start : start + size]],
                    "add_special_tokens": False,
                },
            )
            for start in range(0, len(prompts), size)
        ]
    triples = [prompt_texts(tokenizer, p, endpoint) for p in prompts]
    # Any added token spelled in text (<|im_end|>, <think>, <tool_call> ...) becomes that token on the server.
    spellings = added_token_spellings(tokenizer)
    if any(s in text for triple in triples for text in triple for s in spellings):
        warnings.warn(
            f"Some query or document text spells a control token (e.g. <|im_end|>). endpoint={endpoint!r} "
            "sends text, which the server tokenizes into real control tokens, so those scores differ from "
            "in-process ones; endpoint='classify' sends token ids and keeps such text plain.",
            UserWarning,
            stacklevel=4,
        )
    # /rerank takes one query per request, /score one instruction (the template's variable).
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, (instruction, query, _) in enumerate(triples):
        key: tuple[str, ...] = (instruction, query) if endpoint == "rerank" else (instruction,)
        groups.setdefault(key, []).append(position)
    jobs: list[Job] = []
    for key, positions in groups.items():
        for start in range(0, len(positions), size):
            chunk = tuple(positions[start : start + size])
            documents = [triples[i][2] for i in chunk]
            body: dict[str, Any] = {**model_field, "chat_template_kwargs": {"instruction": key[0]}}
            if endpoint == "rerank":
                body |= {"query": key[1], "documents": documents, "top_n": len(chunk)}
            else:
                body |= {"queries": [triples[i][1] for i in chunk], "documents": documents}
            jobs.append(Job(positions=chunk, path=f"/{endpoint}", body=body))
    return jobs
