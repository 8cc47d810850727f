"""What loading the looplet pytest plugin adds to a plain ``pytest`` start-up.

Run by hand::

    python bench/plugin_startup.py            # about 10 s
    python bench/plugin_startup.py --runs 31  # more runs, steadier medians

Method: a temporary folder holds a ``pytest.ini`` (so the rootdir is fixed), a tiny test file
and a tiny eval file. Each run is a fresh ``python -m pytest --collect-only -q`` subprocess of
this interpreter, with this checkout first on ``PYTHONPATH`` and the plugin loaded through its
``pytest11`` entry point (looplet must be installed, e.g. ``pip install -e .``). Three
commands alternate, so drift hits all alike: with ``-p no:looplet`` (the plugin blocked),
with the plugin (evals off: the plain unit-test run), and with ``--looplet-evals`` (eval files
collected too). The figure is the median wall time of each, after two unrecorded warm-up
rounds that also write the ``.pyc`` files; the goal is under 50 ms between the first two.
Beside it, ``time.perf_counter()`` inside a fresh process around ``import
pytest_looplet.plugin`` (pytest already imported) gives the module's own import cost, which
the wall-time difference is too noisy to show.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 50.0

FILES = {
    "pytest.ini": "[pytest]\n",
    "test_tiny.py": "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n",
    "eval_tiny.py": "def eval_one():\n    return 1.0\n",
}

COMMANDS = {
    "blocked": ["-p", "no:looplet"],
    "loaded": [],
    "evals": ["--looplet-evals"],
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    return env


def _run(folder: Path, extra: list[str], env: dict[str, str]) -> tuple[float, str]:
    args = [sys.executable, "-m", "pytest", "--collect-only", "-q", *extra]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return elapsed, done.stdout


def measure(runs: int) -> dict[str, float]:
    """Median wall ms of each command over ``runs`` alternating rounds."""
    env = _env()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, text in FILES.items():
            (folder / name).write_text(text)
        _, out = _run(folder, COMMANDS["evals"], env)
        if "eval_tiny.py::eval_one" not in out:
            raise SystemExit("the looplet plugin did not load: is looplet installed?")
        for _ in range(2):
            for extra in COMMANDS.values():
                _run(folder, extra, env)
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for _ in range(runs):
            for name, extra in COMMANDS.items():
                times[name].append(_run(folder, extra, env)[0])
    return {name: statistics.median(values) for name, values in times.items()}


def import_ms(runs: int) -> float:
    """Median ms of ``import pytest_looplet.plugin`` inside a fresh process, pytest imported."""
    code = (
        "import time, pytest; t = time.perf_counter(); import pytest_looplet.plugin; "
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds per command (default 15)")
    runs = parser.parse_args().runs
    medians = measure(runs)
    overhead = medians["loaded"] - medians["blocked"]
    own_import = import_ms(runs)
    print(f"pytest --collect-only -q, median of {runs} fresh processes each (ms)")
    print("| command                                    |    ms |")
    print("|--------------------------------------------|------:|")
    print(f"| `-p no:looplet` (plugin blocked)           | {medians['blocked']:5.1f} |")
    print(f"| plugin loaded, evals off                   | {medians['loaded']:5.1f} |")
    print(f"| plugin loaded, `--looplet-evals`           | {medians['evals']:5.1f} |")
    print(f"| **overhead of the plugin (evals off)**     | {overhead:5.1f} |")
    print(f"| `import pytest_looplet.plugin`, in-process | {own_import:5.2f} |")
    met = "yes" if overhead < GOAL_MS else "NO"
    print(f"goal: overhead < {GOAL_MS:.0f} ms: {met}")
    return 0 if overhead < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
