"""Every cassette committed to the repository is free of secrets and loads quickly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from looplet.cassettes.serializer import load_interactions

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = sorted(
    [*ROOT.glob("example_evals/cassettes/**/*.yaml"), *ROOT.glob("looplet/**/cassettes/*.yaml")]
)
KEY_LIKE = re.compile(
    r"sk-[A-Za-z0-9_-]{8,}|bearer\s+\S+|\"(authorization|x-api-key|api-key|cookie)\"",
    re.IGNORECASE,
)


def test_the_repository_has_cassettes() -> None:
    assert len(CASSETTES) >= 12


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_key_like_strings_on_disk(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert KEY_LIKE.search(text) is None
    assert load_interactions(text)  # and each one loads
