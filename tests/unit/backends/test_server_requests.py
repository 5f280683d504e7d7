"""The server backend's request planning and response parsing, without a server or an engine."""

from __future__ import annotations

import warnings

import pytest

from qwen3_rerank import DEFAULT_INSTRUCTION
from qwen3_rerank.backends.server_requests import chat_template, plan_requests, prompt_texts
from qwen3_rerank.backends.server_responses import parse_scores
from qwen3_rerank.backends.server_transport import Retryable, normalise_urls
from qwen3_rerank.errors import ServerError
from qwen3_rerank.prompt import canonical_prompt

URL = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        (
            "classify",
            {"data": [{"index": 2, "probs": [0.3]}, {"index": 0, "probs": [0.1]}, {"index": 1, "probs": [0.2]}]},
        ),
        (
            "rerank",
            {
                "results": [
                    {"index": 1, "relevance_score": 0.2},
                    {"index": 2, "relevance_score": 0.3},
                    {"index": 0, "relevance_score": 0.1},
                ]
            },
        ),
        ("score", {"data": [{"index": 0, "score": 0.1}, {"index": 2, "score": 0.3}, {"index": 1, "score": 0.2}]}),
    ],
)
def test_scores_follow_the_response_indices_not_its_order(endpoint: str, body: dict) -> None:
    assert parse_scores(endpoint, body, 3, URL) == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"data": [{"index": 0, "probs": [0.1]}]}, "answered 1 results for 2 prompts"),
        ({"results": []}, "answered 0 results for 2 prompts"),
        ({"results": "none"}, "answered no list of results for 2 prompts"),
        ({"data": [{"index": 0, "probs": [0.1]}, {"index": 0, "probs": [0.2]}]}, "repeated or out-of-range index 0"),
        ({"data": [{"index": 0, "probs": [0.1]}, {"index": 2, "probs": [0.2]}]}, "out-of-range index 2"),
        ({"data": [{"index": 0, "probs": [0.1]}, {"index": True, "probs": [0.2]}]}, "index True"),
        ({"data": [{"index": 0, "probs": [0.1]}, {"index": 1, "probs": [1.5]}]}, "invalid score 1.5 for index 1"),
        ({"data": [{"index": 0, "probs": [0.1]}, {"index": 1, "probs": [float("nan")]}]}, "invalid score nan"),
    ],
)
def test_malformed_answers_are_retried(body: dict, reason: str) -> None:
    with pytest.raises(Retryable, match=reason.replace("(", r"\(")) as caught:
        parse_scores("classify" if "data" in body else "rerank", body, 2, URL)
    assert caught.value.url == URL


def test_a_server_without_the_yes_no_head_is_a_server_error_not_a_retry() -> None:
    with pytest.raises(ServerError, match="2 class probabilities per prompt") as caught:
        parse_scores("classify", {"data": [{"index": 0, "probs": [0.4, 0.6]}]}, 1, URL)
    assert caught.value.urls == (URL,)


def test_classify_sends_ids_in_batches_and_in_order() -> None:
    prompts = [[1, 2], [3], [4, 5, 6], [7]]
    jobs = plan_requests("classify", prompts, batch_size=3, served_model_name="m")
    assert [job.positions for job in jobs] == [(0, 1, 2), (3,)]
    assert jobs[0].path == "/classify"
    assert jobs[0].body == {"model": "m", "input": [[1, 2], [3], [4, 5, 6]], "add_special_tokens": False}
    assert jobs[1].body["input"] == [[7]]


@pytest.fixture(scope="module")
def mixed_prompts(prompt_builder) -> list[list[int]]:
    return prompt_builder.build_triples(
        [
            (DEFAULT_INSTRUCTION, "q1", "d0"),
            ("Find recipes", "q1", "d1"),
            (DEFAULT_INSTRUCTION, "q2", "d2"),
            (DEFAULT_INSTRUCTION, "q1", "d3"),
        ]
    )


def test_rerank_groups_by_instruction_and_query(prompt_builder, mixed_prompts) -> None:
    jobs = plan_requests(
        "rerank", mixed_prompts, batch_size=8, served_model_name=None, tokenizer=prompt_builder.hf_tokenizer
    )
    assert [(job.positions, job.body["query"], job.body["documents"]) for job in jobs] == [
        ((0, 3), "q1", ["d0", "d3"]),
        ((1,), "q1", ["d1"]),
        ((2,), "q2", ["d2"]),
    ]
    assert jobs[1].body["chat_template_kwargs"] == {"instruction": "Find recipes"}
    assert jobs[0].body["top_n"] == 2


def test_score_groups_by_instruction_only(prompt_builder, mixed_prompts) -> None:
    jobs = plan_requests(
        "score", mixed_prompts, batch_size=2, served_model_name=None, tokenizer=prompt_builder.hf_tokenizer
    )
    assert [(job.positions, job.body["queries"]) for job in jobs] == [
        ((0, 2), ["q1", "q2"]),
        ((3,), ["q1"]),
        ((1,), ["q1"]),
    ]


def test_prompt_texts_render_back_to_the_same_prompt(prompt_builder) -> None:
    plain = ("Find recipes", "green tea", "Steep it at 80 C.")
    assert prompt_texts(prompt_builder.hf_tokenizer, prompt_builder.build_one(*plain), "rerank") == plain
    # Markers inside user text may move the split, but the server renders the very same string.
    marked = ("Find <Query>: here", "a\n<Document>: b", "c <Instruct>: d")
    prompt = prompt_builder.build_one(*marked)
    split = prompt_texts(prompt_builder.hf_tokenizer, prompt, "rerank")
    assert canonical_prompt(*split) == prompt_builder.decode(prompt)


@pytest.mark.parametrize("spelling", ["<|im_end|>", "<think>", "<tool_call>", "</tool_response>", "<|vision_pad|>"])
def test_text_endpoints_warn_for_every_added_token_spelling(prompt_builder, spelling: str) -> None:
    prompts = prompt_builder.build(DEFAULT_INSTRUCTION, "q", [f"before {spelling} after"])
    with pytest.warns(UserWarning, match="spells a control token"):
        plan_requests("rerank", prompts, batch_size=8, served_model_name=None, tokenizer=prompt_builder.hf_tokenizer)


def test_plain_text_does_not_warn(prompt_builder) -> None:
    prompts = prompt_builder.build(DEFAULT_INSTRUCTION, "q", ["<tool call> and <|im_end| are not tokens"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan_requests("score", prompts, batch_size=8, served_model_name=None, tokenizer=prompt_builder.hf_tokenizer)


def test_chat_template_is_the_canonical_prompt_with_jinja_fields() -> None:
    template = chat_template()
    assert template.endswith("{{ '' }}")
    assert template.startswith(canonical_prompt("X", "Y", "Z").split("X")[0])


def test_urls_are_normalised_and_checked() -> None:
    assert normalise_urls(["http://a:1/", " https://b:2/v1 "]) == ("http://a:1", "https://b:2")
    with pytest.raises(ValueError, match="must start with http"):
        normalise_urls("a:1")
    with pytest.raises(ValueError, match="listed twice"):
        normalise_urls(["http://a:1", "http://a:1/v1"])
    with pytest.raises(TypeError, match="non-empty list"):
        normalise_urls([])
