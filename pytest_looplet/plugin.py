"""The ``pytest11`` entry point. It wires options and markers only; work lives elsewhere.

The eval collection and fixtures arrive with the plugin issue; for now the plugin registers
its option group so ``pytest --help`` shows where looplet's options will live.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``looplet`` option group."""
    parser.getgroup("looplet", "looplet agent evals")
