"""What users read cites only documents they have: a clone holds no reference/ notes, no DESIGN.md.

Messages (every string literal that is not a docstring), the scripts and the README are scanned for the
names of the maintainers' notes that live outside the repository. Docstrings and comments may cite them:
they are for people working on meshproof, who have the notes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_IN_THE_REPO = re.compile(
    r"istio-facts|reference/|DESIGN\.md|suite-anchors|perf-anchors|output-formats|\bfacts §|\banchors §"
)


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_messages_in_the_code_cite_no_document_outside_the_repo():
    sources = [
        REPO / "conftest.py",
        *(p for d in ("meshproof", "fixtures", "suites") for p in (REPO / d).rglob("*.py")),
    ]
    cited = [
        f"{path.relative_to(REPO)}:{line}: {text[:120]!r}"
        for path in sources
        for line, text in _string_literals(path)
        if NOT_IN_THE_REPO.search(text)
    ]
    assert cited == []


def test_the_readme_and_what_scripts_print_cite_no_document_outside_the_repo():
    printed = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in (REPO / "scripts").glob("*.sh")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if not line.lstrip().startswith("#") and NOT_IN_THE_REPO.search(line)
    ]
    readme = [line for line in (REPO / "README.md").read_text().splitlines() if NOT_IN_THE_REPO.search(line)]
    assert printed == [] and readme == []
