"""Regressions for the input and error edges of issue 16: CLI input formats, ties, one-line errors, checks
before anything loads, what documents may be, and float64 scores."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from qwen3_rerank import PromptBuilder, PromptTooLongError, Reranker, relevance_from_logits
from qwen3_rerank.backends.registry import check_engine_options
from qwen3_rerank.cli import main
from qwen3_rerank.cli.rank import read_documents, read_input
from qwen3_rerank.errors import Qwen3RerankError


class RecordingBackend:
    """Scores a prompt by its length plus a per-call position jitter (as a float32 engine's batch noise
    would), and records every prompt it is sent."""

    name = "recording"
    max_prompt_tokens = None

    def __init__(self) -> None:
        self.sent: list[list[int]] = []

    def score_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        self.sent.extend(list(p) for p in prompts)
        return [min(1.0, len(p) / 1000 + 1e-9 * k) for k, p in enumerate(prompts)]

    async def ascore_prompts(self, prompts: Sequence[Sequence[int]]) -> list[float]:
        return self.score_prompts(prompts)

    def close(self) -> None:
        pass


@pytest.fixture
def recorded(tiny_model_dir) -> tuple[Reranker, RecordingBackend]:
    backend = RecordingBackend()
    return Reranker(str(tiny_model_dir), backend=backend, max_length=512), backend


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the tokenizer or the model fails the test: the error must come before. (The checkpoint's
    config check, milliseconds, may run: it reports a wrong model path before vLLM is imported.)"""

    def loaded(*args, **kwargs):
        raise AssertionError("the tokenizer or model was loaded before the bad argument was reported")

    monkeypatch.setattr(PromptBuilder, "from_pretrained", loaded)
    monkeypatch.setattr("qwen3_rerank.prompt.load_hf_tokenizer", loaded)
    monkeypatch.setattr("qwen3_rerank.reranker.open_backend", loaded)


def run_main(capfd, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


# -- 1. JSONL: byte-order mark, a bad line, the auto rule ------------------------------------------------


def test_jsonl_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"text": "a"}\n{"text": "b"}\n')
    assert read_documents(read_input(str(path))) == ["a", "b"]
    path.write_bytes("\ufeffplain first\nsecond\n".encode())
    assert read_documents(read_input(str(path))) == ["plain first", "second"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"text": "a"}\n42\n{"text": "c"}\n', r"line 2 is JSON but neither a string nor an object"),
        ('{"text": "a"}\n\n{"text": "b"}\n{broken\n', r"line 4 is not valid JSON"),
        ('{"text": "a"}\n[1, 2]\n', r"line 2 is JSON but"),
        ('{broken\n{"text": "b"}\n{"text": "c"}\n', r"line 1 is not valid JSON.*2 of its 3"),  # most lines are
        ('"a"\nplain text\n', r"line 2 .*--input-format lines"),  # the first line is
    ],
)
def test_mostly_jsonl_with_a_bad_line_names_the_line(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as caught:
        read_documents(io.StringIO(text))
    assert isinstance(caught.value, Qwen3RerankError)
    assert read_documents(io.StringIO(text), "lines") == [line for line in text.split("\n") if line.strip()]


def test_plain_lines_stay_plain() -> None:
    # neither the first line nor half of the lines is a JSON string or object
    assert read_documents(io.StringIO('plain\nmore plain\n"quoted"\n')) == ["plain", "more plain", '"quoted"']
    assert read_documents(io.StringIO("12\n13\nnull\n")) == ["12", "13", "null"]
    assert read_documents(io.StringIO('{"text": "a"}\n"b"\n')) == ["a", "b"]


# -- 6. a lone \r stays inside its document -------------------------------------------------------------


def test_a_lone_carriage_return_does_not_split_a_document(tmp_path: Path) -> None:
    assert read_documents("one\rstill one\ntwo\r\n\x0cthree\u2028same\n") == [
        "one\rstill one",
        "two",
        "\x0cthree\u2028same",
    ]
    path = tmp_path / "docs.txt"
    path.write_bytes(b"one\rstill one\r\ntwo\n")
    assert read_documents(read_input(str(path))) == ["one\rstill one", "two"]


def test_cli_indices_with_a_lone_carriage_return(tmp_path, tokenizer_dir, monkeypatch, capfd) -> None:
    backend = RecordingBackend()
    monkeypatch.setattr(
        "qwen3_rerank.cli.reranker_from_args", lambda args, **kw: Reranker(str(tokenizer_dir), backend=backend)
    )
    path = tmp_path / "docs.txt"
    path.write_bytes(b"short\nmuch longer first\rhalf of the same document\nmid length one\n")
    code, out, err = run_main(capfd, "rank", "q", "-d", str(path), "-f", "json")
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["index"], r["document"]) for r in rows] == [
        (1, "much longer first\rhalf of the same document"),
        (2, "mid length one"),
        (0, "short"),
    ]


# -- 3. one-line errors ---------------------------------------------------------------------------------


def test_documents_path_that_is_a_directory(tmp_path, no_loading, capfd) -> None:
    code, out, err = run_main(capfd, "rank", "q", "-d", str(tmp_path), "--backend", "transformers")
    assert code == 2 and out == ""
    assert err.splitlines() == [err.strip()] and "is a directory" in err and err.startswith("qwen3-rerank: error:")


def test_bad_utf8_file_names_the_file(tmp_path, no_loading, capfd) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\n".encode("latin-1"))
    code, _, err = run_main(capfd, "rank", "q", "-d", str(path), "--backend", "transformers")
    assert code == 2 and len(err.splitlines()) == 1
    assert str(path) in err and "not UTF-8" in err and "iconv" in err


@pytest.mark.parametrize(
    ("data", "advice"),
    [(b"\x7fELF\x02\x01\x01\x00\x00", "binary data"), (gzip.compress(b"a\nb\n"), "zcat"), (b"caf\xe9\n", "iconv")],
)
def test_binary_stdin_gets_shell_advice(monkeypatch, no_loading, capfd, data, advice) -> None:
    class Stdin(io.TextIOWrapper):
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stdin", Stdin(io.BytesIO(data)))
    code, _, err = run_main(capfd, "rank", "q", "--backend", "transformers")
    assert code == 2 and len(err.splitlines()) == 1
    assert "stdin" in err and advice in err


def test_engine_options_name_the_valid_ones_for_transformers_and_server(no_loading, tiny_model_dir) -> None:
    with pytest.raises(
        TypeError,
        match=r"unknown option 'bogus'\. Valid options: batch_size, device, dtype, "
        r"model_kwargs\.",
    ) as caught:
        Reranker(str(tiny_model_dir), backend="transformers", engine_options={"bogus": 1})
    assert isinstance(caught.value, Qwen3RerankError)
    with pytest.raises(ValueError, match=r"dtype 'float99' is not a torch floating-point dtype.*bfloat16"):
        Reranker(str(tiny_model_dir), backend="transformers", engine_options={"dtype": "float99"})
    with pytest.raises(ValueError, match=r"dtype 'float8_e4m3fn'"):
        Reranker(str(tiny_model_dir), backend="transformers", engine_options={"dtype": "float8_e4m3fn"})
    with pytest.raises(TypeError, match=r"'batchsize' \(did you mean 'batch_size'\?\).*max_concurrency"):
        Reranker(str(tiny_model_dir), backend="server", engine_options={"base_urls": "http://x:1", "batchsize": 4})
    with pytest.raises(ValueError, match=r"needs engine_options=\{'base_urls'"):
        Reranker(str(tiny_model_dir), backend="server")
    assert check_engine_options("transformers", {"dtype": "bfloat16", "batch_size": 4}) == {
        "dtype": "bfloat16",
        "batch_size": 4,
    }


def test_engine_options_for_the_packed_backend(no_loading, tiny_model_dir) -> None:
    assert check_engine_options("packed", {"compile": True, "token_budget": 4096, "attention": "sdpa"}) == {
        "compile": True,
        "token_budget": 4096,
        "attention": "sdpa",
    }
    with pytest.raises(
        TypeError,
        match=r"backend='packed': unknown option 'batch_size'\. Valid options: attention, compile, cuda_graphs, "
        r"device, dtype, max_batch_tokens, model_kwargs, pad_packs, token_budget\.",
    ):
        Reranker(str(tiny_model_dir), backend="packed", engine_options={"batch_size": 4})
    with pytest.raises(ValueError, match=r"dtype 'float99' is not a torch floating-point dtype"):
        Reranker(str(tiny_model_dir), backend="packed", engine_options={"dtype": "float99"})


@pytest.mark.vllm
def test_vllm_engine_options_come_from_engine_args(no_loading, tiny_model_dir) -> None:
    vllm = pytest.importorskip("vllm")
    import dataclasses

    with pytest.raises(
        TypeError,
        match=r"backend='vllm': unknown option 'bogus'\. Valid options: .*"
        r"gpu_memory_utilization.*tensor_parallel_size",
    ) as caught:
        Reranker(str(tiny_model_dir), engine_options={"bogus": 1})
    listed = set(str(caught.value).split("Valid options: ")[1].rstrip(".").split(", "))
    public = {f.name for f in dataclasses.fields(vllm.EngineArgs) if not f.name.startswith("_")}
    assert public - {"model", "runner", "hf_overrides"} <= listed
    with pytest.raises(TypeError, match=r"'gpu_memory_utilisation' \(did you mean 'gpu_memory_utilization'"):
        Reranker(str(tiny_model_dir), engine_options={"gpu_memory_utilisation": 0.5})
    with pytest.raises(ValueError, match=r"dtype 'nonsense' is not one vLLM accepts.*bfloat16.*float32"):
        Reranker(str(tiny_model_dir), engine_options={"dtype": "nonsense"})
    with pytest.raises(ValueError, match=r"may not set 'hf_overrides'"):
        Reranker(str(tiny_model_dir), engine_options={"hf_overrides": {}})
    assert check_engine_options("vllm", {"dtype": "float32", "max_num_seqs": 8}) == {
        "dtype": "float32",
        "max_num_seqs": 8,
    }
    # The backend's own option passes, and so do AsyncEngineArgs' fields (its engine is built from them).
    assert check_engine_options("vllm", {"max_in_flight_prompts": 4}) == {"max_in_flight_prompts": 4}
    from vllm.engine.arg_utils import AsyncEngineArgs

    async_public = {f.name for f in dataclasses.fields(AsyncEngineArgs) if not f.name.startswith("_")}
    assert async_public - {"model", "runner", "hf_overrides"} <= listed
    assert "max_in_flight_prompts" in listed


@pytest.mark.vllm
def test_cli_dtype_float99_is_one_line(tmp_path, no_loading, capfd) -> None:
    pytest.importorskip("vllm")
    (tmp_path / "d.txt").write_text("a\n")
    code, out, err = run_main(capfd, "rank", "q", "-d", str(tmp_path / "d.txt"), "--dtype", "float99")
    errors = [line for line in err.splitlines() if line.startswith("qwen3-rerank: error:")]
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(errors) == 1 and "float99" in errors[0] and "bfloat16" in errors[0]


# -- 4. checked before anything loads -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["--top-n", "0"], "--top-n must be >= 1 (omit it for all documents), got 0"),
        (["--top-n", "-1"], "--top-n must be >= 1 (omit it for all documents)"),
        (["--threshold", "2"], "threshold must lie in"),
        (["--engine-option", "nokey"], "KEY=VALUE"),
        (["--engine-option", "=1"], "KEY=VALUE"),
        (["--max-length", "0"], "max_length must be a positive"),
        (["--backend", "transformers", "--engine-option", "bogus=1"], "unknown option 'bogus'"),
    ],
)
def test_cli_usage_errors_exit_2_before_loading(tmp_path, no_loading, capfd, options, match) -> None:
    (tmp_path / "d.txt").write_text("a\nb\n")
    code, out, err = run_main(capfd, "rank", "q", "-d", str(tmp_path / "d.txt"), *options)
    assert (code, out) == (2, "")
    assert err.startswith("qwen3-rerank: error:") and match in err.splitlines()[0]


def test_reranker_arguments_are_checked_before_loading(no_loading, tiny_model_dir) -> None:
    model = str(tiny_model_dir)
    with pytest.raises(ValueError, match="backend must be 'vllm', 'transformers', 'server' or 'packed'"):
        Reranker(model, backend="bogus")
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        Reranker(model, backend="transformers", max_length=0)
    with pytest.raises(ValueError, match="batch_size"):
        Reranker(model, backend="transformers", batch_size=-1)
    with pytest.raises(TypeError, match="engine_options must be a dict"):
        Reranker(model, backend="transformers", engine_options=[("dtype", "float32")])
    with pytest.raises(TypeError, match="backend must be"):
        Reranker(model, backend=3)


# -- 5. what documents may be; context length; instructions ---------------------------------------------


def test_any_iterable_of_str_is_read_once(recorded) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    reranker, _ = recorded
    docs = ["a b c", "a", "a b", "a"]
    expected = reranker.rank("q", docs)
    reads = []

    def generate():
        for doc in docs:
            reads.append(doc)
            yield doc

    factories = (
        generate,
        lambda: tuple(docs),
        lambda: pd.Series(docs),
        lambda: pd.Series(docs, index=[9, 7, 5, 3]),
        lambda: np.array(docs),
        lambda: iter(docs),
        lambda: (d for d in docs),
    )
    for make in factories:
        ranked = reranker.rank("q", make())
        assert ranked == expected, type(make())
        assert all(type(r.document) is str for r in ranked)
        assert reranker.score("q", make()) == reranker.score("q", docs)
    reads.clear()
    reranker.score("q", generate())
    assert reads == docs  # the generator was read exactly once
    assert reranker.score_pairs(("q", d) for d in docs) == reranker.score("q", docs)


@pytest.mark.parametrize(
    ("documents", "match"),
    [
        ("one document", r"got a single str; wrap a single document in a list: \[document\]"),
        (b"bytes", "got a single bytes"),
        ({"a": "b"}, r"list\(mapping.values\(\)\)"),
        (None, "got NoneType"),
        (5, "got int"),
    ],
)
def test_what_documents_cannot_be(recorded, documents, match) -> None:
    reranker, backend = recorded
    with pytest.raises(TypeError, match=match):
        reranker.rank("q", documents)
    assert backend.sent == []


def test_prompt_too_long_quotes_the_checkpoints_context(tiny_model_dir, tokenizer_dir) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    reranker = Reranker(str(tiny_model_dir), backend=RecordingBackend(), max_length=64)
    with pytest.raises(PromptTooLongError, match=rf"the model's context is {config['max_position_embeddings']} "):
        reranker.rank("a long query " * 30, ["d"])
    assert config["max_position_embeddings"] == 40960 and "32768" not in str(PromptTooLongError)
    # a tokenizer directory without a config cannot tell, so the message says where to look
    builder = PromptBuilder.from_pretrained(str(tokenizer_dir), max_length=64)
    with pytest.raises(PromptTooLongError, match=r"max_position_embeddings in its config.json"):
        builder.build_one("i", "a long query " * 30, "d")


def test_none_as_the_instruction_means_the_default(recorded) -> None:
    reranker, backend = recorded

    def sent(call) -> list[list[int]]:
        backend.sent.clear()
        call()
        return list(backend.sent)

    q, docs = "capital of France", ["Paris.", "Berlin."]
    assert sent(lambda: reranker.score((None, q), docs)) == sent(lambda: reranker.score(q, docs))
    assert sent(lambda: reranker.score((None, q), docs, instruction="Find")) == sent(
        lambda: reranker.score(q, docs, instruction="Find")
    )
    assert sent(lambda: reranker.score_pairs([((None, q), "Paris.")], instruction="Find")) == sent(
        lambda: reranker.score_pairs([(("Find", q), "Paris.")])
    )
    # a query's own instruction wins over the call's (docs/concepts/instructions.md)
    own = sent(lambda: reranker.score(("A", q), docs))
    assert sent(lambda: reranker.score(("A", q), docs, instruction="B")) == own
    assert own != sent(lambda: reranker.score(q, docs, instruction="B"))


# -- 2. identical prompts are scored once ---------------------------------------------------------------


def test_identical_prompts_are_scored_once_for_every_backend(recorded) -> None:
    reranker, backend = recorded
    docs = ["same", "other text here", "same", "x", "same"]
    scores = reranker.score("q", docs)
    assert len(backend.sent) == 3 and len({tuple(p) for p in backend.sent}) == 3
    assert scores[0] == scores[2] == scores[4]
    ranked = reranker.rank("q", docs)
    same = [r.index for r in ranked if r.document == "same"]
    assert same == [0, 2, 4]
    positions = [k for k, r in enumerate(ranked) if r.document == "same"]
    assert positions == list(range(positions[0], positions[0] + 3))


def test_transformers_ties_keep_input_order(reference_reranker) -> None:
    # Duplicates among documents of many lengths: without scoring them once they were padded into
    # different batches and came back up to ~1e-8 apart.
    docs = [("word " * (k % 23)) + f"doc {k}" for k in range(60)]
    for at in (3, 17, 41, 59):
        docs[at] = "the same document, four times"
    scores = reference_reranker.score("q", docs)
    assert len({scores[at] for at in (3, 17, 41, 59)}) == 1
    ranked = reference_reranker.rank("q", docs)
    assert [r.index for r in ranked if r.document == "the same document, four times"] == [3, 17, 41, 59]
    # The de-duplication is the Reranker's (backends score what they are given; the ScoringBackend
    # protocol says callers de-duplicate): its path, spelled out, gives the same scores bit for bit.
    from qwen3_rerank.backends.base import unique_prompts

    unique, slots = unique_prompts(reference_reranker.prompts.build(reference_reranker.instruction, "q", docs))
    direct = reference_reranker.backend.score_prompts(unique)
    assert [direct[slot] for slot in slots] == scores


# -- 7. float64 scores ----------------------------------------------------------------------------------


def test_relevance_is_a_float64_sigmoid() -> None:
    np = pytest.importorskip("numpy")
    for diff in (16.7, 20.0, 30.0, 36.0):
        score = relevance_from_logits(diff, 0.0)
        assert score < 1.0 and score == 1.0 / (1.0 + math.exp(-diff))
        assert np.float32(1.0) / (np.float32(1.0) + np.exp(np.float32(-diff))) == 1.0  # float32 saturates
        assert relevance_from_logits(0.0, diff) == pytest.approx(math.exp(-diff), rel=1e-12)
    assert relevance_from_logits(40.0, 0.0) == 1.0  # past ~36.7 even float64 cannot tell


def test_transformers_backend_returns_float64_sigmoid_of_float32_logits(reference_reranker) -> None:
    torch = pytest.importorskip("torch")
    import copy
    import threading

    from qwen3_rerank.backends.transformers_backend import _relevances

    logits = torch.tensor([[20.0, 0.0], [-7.25, 14.5], [3.0, 3.0]], dtype=torch.float32)
    assert _relevances(logits) == [1 / (1 + math.exp(-20.0)), math.exp(-21.75) / (1 + math.exp(-21.75)), 0.5]
    # The real path, with the yes/no rows scaled so that z_yes - z_no = 25: far past float32's saturation.
    prompt = reference_reranker.prompts.build_one(reference_reranker.instruction, "q", "d")
    (original,) = reference_reranker.backend.score_prompts([prompt])
    diff = math.log(original / (1 - original))
    backend = copy.copy(reference_reranker.backend)
    backend._lock = threading.Lock()
    yes, no = reference_reranker.backend._yes_no
    backend._yes_no = torch.stack([no + (yes - no) * (25.0 / diff), no])
    (score,) = backend.score_prompts([prompt])
    assert score < 1.0
    assert 1.0 - score == pytest.approx(math.exp(-25.0), rel=1e-3)


# -- 6. the first line of stderr is the error -----------------------------------------------------------


def test_first_stderr_line_of_a_failure_is_the_error(tiny_model_dir: Path) -> None:
    """A failure after the model loaded (the query does not fit): no progress bar comes first."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "qwen3_rerank.cli",
            "rank",
            "a long query " * 30,
            "--model",
            str(tiny_model_dir),
            "--backend",
            "transformers",
            "--max-length",
            "64",
        ],
        input="a doc\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0].startswith("qwen3-rerank: error: The template, instruction and query take")
    assert "40960" in proc.stderr and "%|" not in proc.stderr
