"""A process that exits with vLLM engines still open exits cleanly (issue 20 item 4).

LangChain and LlamaIndex users rarely call ``close()``; before, every such exit logged vLLM's
``EngineDeadError`` traceback as ERROR. The script below opens an engine through the core and both
adapters (one shared engine), scores, and returns without closing anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys

    from qwen3_rerank import Reranker

    if __name__ == "__main__":
        model = sys.argv[1]
        reranker = Reranker(model)
        print(reranker.score("capital of France", ["Paris is the capital.", "Cats purr."]))
        try:
            from langchain_core.documents import Document
            from langchain_qwen3_rerank import Qwen3Rerank as LangChainRerank
        except ImportError:
            pass
        else:
            compressor = LangChainRerank(model)  # same model and options: the same engine
            print(compressor.compress_documents([Document(page_content="Paris")], "capital of France"))
        try:
            from llama_index.core.schema import NodeWithScore, TextNode
            from llama_index.postprocessor.qwen3_rerank import Qwen3Rerank as LlamaIndexRerank
        except ImportError:
            pass
        else:
            postprocessor = LlamaIndexRerank(model)
            nodes = [NodeWithScore(node=TextNode(text="Paris"))]
            print(postprocessor.postprocess_nodes(nodes, query_str="capital of France"))
        # no close(): the interpreter's exit must shut the engine down quietly
    """
)


@pytest.mark.vllm
def test_exit_without_close_leaves_no_traceback(tiny_model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    script = tmp_path / "no_close.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(tiny_model_dir)], capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("[") >= 1, proc.stdout
    for marker in ("Traceback", "ERROR", "EngineDeadError", "exited unexpectedly"):
        assert marker not in proc.stderr, f"{marker!r} in stderr:\n{proc.stderr[-3000:]}"
