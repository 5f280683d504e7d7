"""The test tree mirrors src/ (docs/contributing.md): a newcomer finds a module's tests by its name.

``tests/unit/<package path>/test_<module>[_<aspect>].py`` tests ``src/qwen3_rerank/<package path>/<module>.py``
(``test_init...`` tests the package's ``__init__``); whole-system runs against real engines, servers and Ray live
in ``tests/system/``; ``tests/test_*.py`` at the top test the docs, the examples and this layout.
"""

from __future__ import annotations

from paths import REPO

SRC = REPO / "src" / "qwen3_rerank"
TESTS = REPO / "tests"


def _module_names(package: str) -> set[str]:
    folder = SRC / package
    names = {path.stem for path in folder.glob("*.py")} | {path.name for path in folder.iterdir() if path.is_dir()}
    return {"init" if name == "__init__" else name for name in names} - {"__pycache__", "__main__"}


def test_every_unit_test_module_names_the_source_module_it_tests() -> None:
    strays = []
    for path in sorted((TESTS / "unit").rglob("test_*.py")):
        package = path.parent.relative_to(TESTS / "unit").as_posix()
        package = "" if package == "." else package
        if not (SRC / package).is_dir():
            strays.append(f"{path.relative_to(REPO)}: no src/qwen3_rerank/{package}")
            continue
        stem = path.stem.removeprefix("test_")
        if not any(stem == name or stem.startswith(name + "_") for name in _module_names(package)):
            strays.append(f"{path.relative_to(REPO)}: names no module of src/qwen3_rerank/{package}")
    assert strays == []


def test_no_test_module_is_left_outside_the_layout() -> None:
    top = {path.name for path in TESTS.glob("test_*.py")}
    assert top == {"test_docs.py", "test_examples.py", "test_layout.py"}
