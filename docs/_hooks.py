"""MkDocs hook: Sphinx roles in docstrings, as the API reference shows them.

looplet's docstrings name other objects with Sphinx roles (``:class:`~looplet.types.Step```),
which mkdocstrings renders as the role's text followed by code. This drops the role and, as
Sphinx does, shows only the last part of a ``~``-prefixed name.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|ref):<code>(~?)([^<]*)</code>")


def _shown(match: re.Match[str]) -> str:
    tilde, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Rewrite the roles of one page's HTML."""
    return _ROLE.sub(_shown, html)
