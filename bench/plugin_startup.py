"""What loading the looplet pytest plugin adds to a plain ``pytest`` run, in CPU time.

Run by hand::

    python bench/plugin_startup.py            # about 40 s
    python bench/plugin_startup.py --runs 41  # more runs, steadier medians

Method: a temporary folder holds a ``pytest.ini`` (so the rootdir is fixed) and a two-test
file. Each run is a fresh ``python -m pytest -q`` subprocess of this interpreter, with this
checkout first on ``PYTHONPATH`` and the plugin loaded through its ``pytest11`` entry point
(looplet must be installed, e.g. ``pip install -e .``): the two tests run. Three commands
take turns, in a new shuffled order each round, so that a busy spell of the machine falls on
all of them alike: with ``-p no:looplet`` (the plugin blocked: pytest's own cost, with
whatever other plugins are installed), with the plugin (evals off: the unit-test run of a
project that may never run an eval), and with ``--looplet-evals`` (evals on, nothing to run:
a project's unit tests run with the flag in its ``addopts``). The folder holds no eval file:
collecting and importing one is the user's code, not the plugin's. Each is timed by the CPU
time the child used (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``), not wall time:
on a shared machine wall time varies more than the effect. The figure is each command's
median after two unrecorded warm-up rounds that also write the ``.pyc`` files; the goals are
at most 2% over pytest's own without the flag and 5% with it. Beside it, the looplet modules
each run loaded (one more run of each, in the process), and ``time.process_time()`` in a
fresh process around ``import pytest_looplet.plugin`` (pytest already imported), the
module's own import cost.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"loaded": 0.02, "evals": 0.05}

FILES = {
    "pytest.ini": "[pytest]\n",
    "test_tiny.py": "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n",
}

PYTEST = ["-m", "pytest", "-q"]
COMMANDS = {
    "blocked": ["-p", "no:looplet"],
    "loaded": [],
    "evals": ["--looplet-evals"],
}
LABELS = {
    "blocked": "`-p no:looplet` (pytest's own)",
    "loaded": "plugin loaded, evals off",
    "evals": "plugin loaded, `--looplet-evals`",
}

# Runs pytest in the process and prints the looplet modules it loaded.
_MODULES = (
    "import sys, pytest\n"
    "code = pytest.main(sys.argv[1:])\n"
    "print('looplet modules:', *sorted(m for m in sys.modules if m.split('.')[0] in "
    "('looplet', 'pytest_looplet')))\n"
    "sys.exit(int(code))\n"
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    return env


def _run(folder: Path, args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """CPU ms (user + system) of one child ``python <args>``, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, *args], cwd=folder, env=env, capture_output=True, text=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used * 1000, done.stdout


def measure(runs: int) -> tuple[dict[str, float], dict[str, str]]:
    """Median CPU ms of each command over ``runs`` shuffled rounds, and the looplet modules
    each loaded."""
    env = _env()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, text in FILES.items():
            (folder / name).write_text(text)
        _, out = _run(folder, ["-m", "pytest", "--help"], env)
        if "--looplet-evals" not in out:
            raise SystemExit("the looplet plugin did not load: is looplet installed?")
        modules = {}
        for name, extra in COMMANDS.items():
            out = _run(folder, ["-c", _MODULES, "-q", *extra], env)[1]
            line = out.strip().splitlines()[-1]
            modules[name] = line.removeprefix("looplet modules:").strip()
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for round_ in range(runs + 2):
            order = list(COMMANDS)
            random.shuffle(order)
            for name in order:
                spent = _run(folder, [*PYTEST, *COMMANDS[name]], env)[0]
                if round_ >= 2:  # two warm-up rounds, which also write the .pyc files
                    times[name].append(spent)
    return {name: statistics.median(values) for name, values in times.items()}, modules


def import_ms(runs: int) -> float:
    """Median CPU ms of ``import pytest_looplet.plugin`` in a fresh process, pytest imported."""
    code = (
        "import time, pytest; t = time.process_time(); import pytest_looplet.plugin; "
        "print((time.process_time() - t) * 1000)"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="rounds per command (default 21)")
    runs = parser.parse_args().runs
    medians, modules = measure(runs)
    own = medians["blocked"]
    print(f"pytest -q (two tests), CPU ms, median of {runs} fresh processes each")
    print("| command                                  |    ms | over pytest's own |")
    print("|------------------------------------------|------:|------------------:|")
    met = True
    for name, label in LABELS.items():
        ms = medians[name]
        share = (ms - own) / own
        goal = GOALS.get(name)
        verdict = ""
        if goal is not None:
            ok = share <= goal
            met = met and ok
            verdict = f" (goal ≤ {goal:.0%}: {'met' if ok else 'NOT met'})"
        extra = "" if name == "blocked" else f"{ms - own:+.1f} ms, {share:+.1%}"
        print(f"| {label:<40} | {ms:5.1f} | {extra:>17} |{verdict}")
    print(f"`import pytest_looplet.plugin`, in a fresh process: {import_ms(runs):.2f} ms CPU")
    for name, label in LABELS.items():
        print(f"looplet modules loaded, {label}: {modules[name] or '(none)'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
