"""Every public name is documented: on some docs page, and (for the top-level names) in
the overview table of docs/index.md."""

from __future__ import annotations

from pathlib import Path

import pytest

import resilience
import resilience.testing

ROOT = Path(__file__).resolve().parent.parent
DOCS = "\n".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))
INDEX = (ROOT / "docs" / "index.md").read_text()


@pytest.mark.parametrize("name", resilience.__all__)
def test_top_level_names_are_documented(name: str) -> None:
    assert f"`{name}`" in DOCS
    assert f"`{name}`" in INDEX.split("## What is in the box", 1)[1]


@pytest.mark.parametrize("name", resilience.testing.__all__)
def test_testing_names_are_documented(name: str) -> None:
    assert f"`{name}`" in DOCS or f"`resilience.testing.{name}`" in DOCS
