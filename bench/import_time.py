"""How long ``import looplet`` takes in a fresh interpreter, against the seed, and what it loads.

Run by hand::

    python bench/import_time.py                        # about 20 s
    python bench/import_time.py --runs 41              # more runs, steadier medians
    python bench/import_time.py --seed path/to/looplet-0.1.7-py3-none-any.whl

**Against the seed** (the goal: at most 0.35x the CPU time of the seed's ``import looplet``).
The seed is looplet 0.1.7 from PyPI, fetched once with ``pip download looplet==0.1.7
--no-deps`` into the system temp folder and unpacked there (``--seed`` takes a wheel or a
folder holding ``looplet/`` instead). Five commands run in fresh interpreters, in a new
shuffled order each round so that a busy spell of the machine falls on all of them alike:
``python -c pass``, ``import looplet`` from this checkout and from the seed, and ``from looplet
import composable_loop, BaseToolRegistry, ToolSpec, LoopConfig`` (the names an agent script
starts with, which load the loop itself) from each. Each is timed by the CPU time the child
used (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``), not wall time: on a shared
machine wall time varies more than the effect. The figure is each command's median after two
unrecorded warm-up rounds that also write the ``.pyc`` files, minus the bare interpreter's.
The children run in an empty folder with only the one tree on ``PYTHONPATH``.

**This checkout alone**: every run is a new subprocess of the same interpreter, with this
checkout first on ``PYTHONPATH``. Wall time of ``python -c "import looplet"`` minus that of
``python -c "pass"`` (the two alternate, so drift hits both alike; the median of each is
taken, after two unrecorded warm-up runs that also write the ``.pyc`` files); this includes
tearing the modules down at exit. ``time.perf_counter()`` around the import inside a fresh
process gives the import alone. ``-X importtime`` then gives the per-module self times
(median over the runs) and looplet's own cumulative figure. Finally a fresh interpreter
checks that ``import looplet`` loaded none of the provider and test dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 30.0
SEED = "looplet==0.1.7"
GOAL_SEED_RATIO = 0.35
AGENT_NAMES = "from looplet import composable_loop, BaseToolRegistry, ToolSpec, LoopConfig"
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


def seed_tree(given: str | None) -> Path:
    """A folder holding the seed's ``looplet/`` package: ``given`` (a wheel or a folder), else
    the seed from PyPI, downloaded and unpacked once into the system temp folder."""
    if given is not None:
        path = Path(given).resolve()
        if path.is_dir():
            return path
        target = Path(tempfile.gettempdir()) / f"looplet-bench-seed-{path.stem}"
        wheel = path
    else:
        target = Path(tempfile.gettempdir()) / "looplet-bench-seed-0.1.7"
        if (target / "looplet" / "__init__.py").is_file():
            return target
        download = target.with_name(target.name + "-wheel")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", SEED, "--no-deps", "-q", "-d", str(download)],
            check=True,
        )
        wheel = next(download.glob("looplet-*.whl"))
    if not (target / "looplet" / "__init__.py").is_file():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
    return target


def _cpu_ms(args: list[str], env: dict[str, str], cwd: str) -> float:
    """CPU time (user + system) that the child running ``args`` used, in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(args, env=env, cwd=cwd, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used * 1000


def versus_seed(runs: int, seed: Path) -> dict[str, float]:
    """Median CPU ms of each command, this checkout's and the seed's runs interleaved."""
    trees = {"checkout": ROOT, "seed": seed}
    commands: dict[str, tuple[str, dict[str, str]]] = {"bare": ("pass", _env())}
    for tree, path in trees.items():
        env = _env()
        env["PYTHONPATH"] = str(path)  # this tree alone: the checkout's path is not added
        commands[f"import {tree}"] = ("import looplet", env)
        commands[f"names {tree}"] = (AGENT_NAMES, env)
    check = "import looplet, sys; print(looplet.__file__)"
    for tree, path in trees.items():
        env = commands[f"import {tree}"][1]
        where = subprocess.run(
            [sys.executable, "-c", check], env=env, capture_output=True, text=True, check=True
        ).stdout
        if not where.startswith(str(path)):
            raise SystemExit(f"the {tree} run imported looplet from {where.strip()}")
    times: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as cwd:
        for round_ in range(runs + 2):
            order = list(commands)
            random.shuffle(order)
            for name in order:
                code, env = commands[name]
                spent = _cpu_ms([sys.executable, "-c", code], env, cwd)
                if round_ >= 2:  # two warm-up rounds, which also write the .pyc files
                    times[name].append(spent)
    return {name: statistics.median(values) for name, values in times.items()}


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
    parser.add_argument("--seed", help="the seed: a looplet wheel or a folder holding looplet/")
    args = parser.parse_args()

    seed = versus_seed(args.runs, seed_tree(args.seed))
    bare_cpu = seed["bare"]
    print(
        f"\nagainst the seed ({SEED}): CPU ms of fresh interpreters, median of {args.runs} "
        f"interleaved runs (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)"
    )
    print(f"{'python -c pass':<58}{bare_cpu:>8.1f} ms")
    ratio = 0.0
    for label, key in (("import looplet", "import"), (AGENT_NAMES, "names")):
        ours, theirs = seed[f"{key} checkout"] - bare_cpu, seed[f"{key} seed"] - bare_cpu
        print(f"{label[:56]:<58}{ours:>8.1f} ms, seed {theirs:.1f} ms: {ours / theirs:.2f}x")
        if key == "import":
            ratio = ours / theirs
    verdict = "met" if ratio <= GOAL_SEED_RATIO else "NOT met"
    print(f"goal: import looplet <= {GOAL_SEED_RATIO}x the seed's: {verdict}")

    bare, imported = wall_times(args.runs)
    inside = in_process(args.runs)
    cumulative, selfs, cums, count = importtime(args.runs)
    bad, before, after = loaded_modules()
    delta = imported - bare

    print(f"\nimport looplet, this checkout, wall time, median of {args.runs} runs")
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
    return 1 if bad or ratio > GOAL_SEED_RATIO else 0


if __name__ == "__main__":
    sys.exit(main())
