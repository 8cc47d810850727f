"""The API reference pages list every public name of the packages whose names load lazily.

``looplet`` and ``looplet.testing`` build ``__all__`` from a table at import time, which the
reference generator (mkdocstrings, reading the source) cannot evaluate; so their pages name
the members explicitly, and this keeps those lists and ``__all__`` the same.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs" / "reference"
MEMBER = re.compile(r"^ {8}- (\w+)$", re.MULTILINE)


@pytest.mark.parametrize(
    ("page", "package"), [("looplet.md", "looplet"), ("testing.md", "looplet.testing")]
)
def test_reference_page_lists_every_public_name(page: str, package: str) -> None:
    listed = MEMBER.findall((DOCS / page).read_text(encoding="utf-8"))
    public = set(importlib.import_module(package).__all__) - {"__version__"}
    assert len(listed) == len(set(listed)), f"docs/reference/{page} lists a name twice"
    assert set(listed) == public, (
        f"docs/reference/{page} and {package}.__all__ differ: "
        f"not listed {sorted(public - set(listed))}, not public {sorted(set(listed) - public)}"
    )
