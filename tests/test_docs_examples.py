"""Every ```python block in the README and docs/ runs, in order, one namespace per file.

A page's examples may build on each other, as a reader would. Blocks that are not
meant to run are fenced as ```text (or another language).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def test_there_are_examples() -> None:
    assert BLOCK.findall((ROOT / "README.md").read_text())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
        line = page.read_text()[: match.start()].count("\n") + 2
        code = compile(
            match.group(1), f"{page.name}:{line} (block {number})", "exec", dont_inherit=True
        )
        exec(code, namespace)
