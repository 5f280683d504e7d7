"""Planning the HTTP requests of a batch: which prompts go in which body, for each endpoint.

``/classify`` takes the token ids as they are. ``/rerank`` and ``/score`` take text rendered by the
server's ``--chat-template`` (:func:`chat_template`), so each prompt is split back into its
(instruction, query, document) and grouped the way those endpoints need.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import EngineError
from ..prompt import DEFAULT_INSTRUCTION, PREFIX, SUFFIX

__all__ = ["Job", "chat_template", "plan_requests", "prompt_texts"]

# Spellings the server's tokenizer turns into control tokens when they appear in text.
_CONTROL_SPELLINGS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>")


def chat_template() -> str:
    """The Qwen3-Reranker prompt as a chat template, for ``vllm serve --chat-template`` (``/rerank``, ``/score``).

    Built from the same template strings as :class:`~qwen3_rerank.PromptBuilder`. Unlike vLLM's example
    template, an empty instruction stays empty. The trailing ``{{ '' }}`` keeps Jinja from dropping the
    template's final newline, which is part of the prompt.
    """
    query = "(messages | selectattr('role', 'eq', 'query') | first).content"
    document = "(messages | selectattr('role', 'eq', 'document') | first).content"
    instruction = f"instruction if instruction is defined else {json.dumps(DEFAULT_INSTRUCTION)}"
    return (
        f"{PREFIX}<Instruct>: {{{{ {instruction} }}}}\n<Query>: {{{{ {query} }}}}\n"
        f"<Document>: {{{{ {document} }}}}{SUFFIX}{{{{ '' }}}}"
    )


@dataclass(frozen=True, slots=True)
class Job:
    """One HTTP request: the prompts' positions in the caller's list and the body that scores them."""

    positions: tuple[int, ...]
    path: str
    body: dict[str, Any]


def prompt_texts(tokenizer: Any, prompt: Sequence[int], endpoint: str) -> tuple[str, str, str]:
    """(instruction, query, document) whose rendering through :func:`chat_template` is ``prompt``'s text.

    Splitting at the first ``\\n<Query>: `` and ``\\n<Document>: `` is exact even when the user text
    contains those markers: the template puts them back between the parts, so the rendered string is
    the same.
    """
    text = tokenizer.decode(list(prompt), skip_special_tokens=False)
    head = "<Instruct>: "
    if not (text.startswith(PREFIX + head) and text.endswith(SUFFIX)):
        raise EngineError("endpoint 'rerank'/'score' got a prompt that PromptBuilder did not make")
    body = text[len(PREFIX) + len(head) : len(text) - len(SUFFIX)]
    instruction, sep_q, rest = body.partition("\n<Query>: ")
    query, sep_d, document = rest.partition("\n<Document>: ")
    if not sep_q or not sep_d:
        raise EngineError(
            "the instruction and query fill max_length, leaving the document no token; endpoint "
            f"{endpoint!r} cannot send that prompt as text. Raise max_length or use endpoint='classify'."
        )
    return instruction, query, document


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
                body={**model_field, "input": [list(map(int, p)) for p in prompts[start : start + size]],
                      "add_special_tokens": False},
            )
            for start in range(0, len(prompts), size)
        ]
    triples = [prompt_texts(tokenizer, p, endpoint) for p in prompts]
    if any(any(s in text for s in _CONTROL_SPELLINGS for text in triple) for triple in triples):
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
        key = (instruction, query) if endpoint == "rerank" else (instruction,)
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
