"""``python -m looplet``: the ``looplet`` command (see :mod:`looplet.cli`)."""

from __future__ import annotations

from looplet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
