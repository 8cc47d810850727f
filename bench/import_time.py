"""How long ``import looplet`` takes in a fresh interpreter, and what it pulls in.

Run by hand::

    python bench/import_time.py            # about 10 s
    python bench/import_time.py --runs 31  # more runs, steadier medians

Method: every run is a new subprocess of the same interpreter, with this checkout first on
``PYTHONPATH``. Wall time of ``python -c "import looplet"`` minus that of ``python -c "pass"``
(the two alternate, so drift hits both alike; the median of each is taken, after two
unrecorded warm-up runs that also write the ``.pyc`` files); this includes tearing the
modules down at exit. ``time.perf_counter()`` around the import inside a fresh process gives
the import alone. ``-X importtime`` then gives the
per-module self times (median over the runs) and looplet's own cumulative figure. Finally a
fresh interpreter checks that ``import looplet`` loaded none of the provider and test
dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 30.0
FORBIDDEN = ("openai", "anthropic", "httpx", "httpx2", "vcr", "pydantic")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _wall(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return (time.perf_counter() - start) * 1000


def wall_times(runs: int) -> tuple[float, float]:
    """Median wall ms of a bare interpreter and of one that imports looplet."""
    env = _env()
    for _ in range(2):
        _wall("import looplet", env)
    bare, imported = [], []
    for _ in range(runs):
        bare.append(_wall("pass", env))
        imported.append(_wall("import looplet", env))
    return statistics.median(bare), statistics.median(imported)


def in_process(runs: int) -> float:
    """Median ms of ``import looplet`` timed inside the fresh process (no start-up or exit)."""
    code = (
        "import time; t = time.perf_counter(); import looplet; "
        "print((time.perf_counter() - t) * 1000)"
    )
    env = _env()
    return statistics.median(
        float(
            subprocess.run(
                [sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(runs)
    )


def importtime(runs: int) -> tuple[float, dict[str, float], dict[str, float], int]:
    """``-X importtime``: looplet's cumulative ms, per-module self and cumulative ms, count."""
    env = _env()
    selfs: dict[str, list[float]] = defaultdict(list)
    cums: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    count = 0
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import looplet"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        seen = 0
        for line in proc.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, cumulative, name = line[len("import time:") :].split("|")
            selfs[name.strip()].append(int(own) / 1000)
            cums[name.strip()].append(int(cumulative) / 1000)
            seen += 1
            if name.strip() == "looplet":  # the top-level line: everything import looplet did
                totals.append(int(cumulative) / 1000)
        count = seen
    self_ms = {name: statistics.median(v) for name, v in selfs.items()}
    cum_ms = {name: statistics.median(v) for name, v in cums.items()}
    return statistics.median(totals), self_ms, cum_ms, count


def loaded_modules() -> tuple[list[str], int, int]:
    """Forbidden packages present after ``import looplet``, and module counts before/after."""
    code = (
        "import sys, json; before = len(sys.modules); import looplet; "
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}); "
        "print(json.dumps([bad, before, len(sys.modules)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(), check=True, capture_output=True, text=True
    ).stdout
    bad, before, after = json.loads(out)
    return bad, before, after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="subprocess runs per figure")
    args = parser.parse_args()

    bare, imported = wall_times(args.runs)
    inside = in_process(args.runs)
    cumulative, selfs, cums, count = importtime(args.runs)
    bad, before, after = loaded_modules()
    delta = imported - bare

    print(
        f"\nimport looplet, fresh interpreter, median of {args.runs} runs "
        f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
    )
    print(f"{'python -c pass':<42}{bare:>9.1f} ms")
    print(f"{'python -c import looplet':<42}{imported:>9.1f} ms")
    verdict = "met" if delta < GOAL_MS else "NOT met"
    print(
        f"{'difference (cost of import looplet)':<42}{delta:>9.1f} ms   "
        f"goal < {GOAL_MS:.0f} ms: {verdict}"
    )
    print(
        f"{'timed inside the process (perf_counter)':<42}{inside:>9.1f} ms   "
        "(the import alone: no interpreter exit)"
    )
    print(
        f"{'-X importtime, looplet cumulative':<42}{cumulative:>9.1f} ms   "
        "(inflated by -X importtime itself)"
    )
    print(
        f"{'modules loaded by import looplet':<42}{after - before:>9d}      "
        f"({count} import lines under -X importtime)"
    )

    status = "none (ok)" if not bad else "FOUND: " + ", ".join(bad)
    print(f"\nprovider/test packages in sys.modules after import looplet: {status}")
    print(f"  checked: {', '.join(FORBIDDEN)}")

    print("\ntop 10 modules by self time under -X importtime (median ms)")
    for name, ms in sorted(selfs.items(), key=lambda kv: kv[1], reverse=True)[:10]:
        print(f"  {ms:7.2f}  {name}")

    print("\ntop 5 non-looplet packages by cumulative time (children included; may nest)")
    outside = {k: v for k, v in cums.items() if not k.startswith("looplet")}
    for name, ms in sorted(outside.items(), key=lambda kv: kv[1], reverse=True)[:5]:
        print(f"  {ms:7.2f}  {name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
