"""What a replayed eval costs under ``pytest --looplet-evals``, beside its floor, and when
``-n 2`` pays.

Run by hand::

    python bench/eval_throughput.py                     # 200 and 1,000 evals (about 10 min)
    python bench/eval_throughput.py --rounds 5          # more rounds, steadier medians
    python bench/eval_throughput.py --sizes 100 300     # other suite sizes
    python bench/eval_throughput.py --crossover         # only: where -n 2 starts to pay
    python bench/eval_throughput.py --baseline ../old   # also another checkout, alternated
    python bench/eval_throughput.py --profile           # cProfile of one 200-eval -n 0 run

A temporary folder holds a suite of N eval files, one eval each, every one running the same
10-turn agent (nine ``greet`` calls, then ``done``) through ``looplet_agent`` and replaying
the same cassette (copied per eval), recorded once through the real ``openai`` SDK from the
loopback ``ScriptedModelServer``. Each run is a fresh ``python -m pytest --looplet-evals
evals -n 0`` (or ``-n 2``) subprocess of this interpreter, the measured checkout first on
the path, the plugin and xdist loaded with ``-p`` and nothing autoloaded, so that other
installed plugins do not weigh on the figures.

* **Per-eval cost**: the marginal cost of one eval at ``-n 0``, the slope between the two
  suite sizes, ``(T(large) - T(small)) / (large - small)``, in wall time and in CPU time of
  the pytest process (user + system, from ``getrusage``: the machine's other load moves it
  less). Start-up and collection's fixed part are in both sizes and drop out.
* **Its floor**: N plain pytest tests (``floor/``, no looplet plugin) that each make the
  eval's 10 requests (the cassette's bodies) through the real ``openai`` SDK alone, on one
  client per process whose transport is an ``httpx2.MockTransport`` returning the recorded
  responses (no network, no cassette, no vcrpy), and run the same loop (same tools,
  permission hook, printed steps) with ``MockLLMBackend`` answering the same 10 replies.
  Same slope. Its two parts are shown apart: ``loop/`` holds the loop alone, and the SDK
  alone is timed in this process too. The goal is at most 1.5x the floor.
* **xdist**: the wall time of the whole run at ``-n 0`` and at ``-n 2``; the ratio is the
  speed-up. Beside it, two ``-n 0`` processes at once, each running half the evals
  (``--looplet-shard=1/2`` and ``2/2``; each collects the whole suite, as a worker does):
  what two processes gain on this machine at that moment with no xdist at all, the ceiling
  for ``-n 2`` (2x on two idle cores). ``--crossover`` times small suites at ``-n 0`` and
  ``-n 2``, to find the size below which ``-n 2`` does not pay.

Runs of different commands alternate, round after round, so a slow spell of a shared
machine weighs on every figure alike; each figure is a median over the rounds, after a
warm-up run of each that also writes the ``.pyc`` files and pytest's rewritten eval modules.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_FLOOR_RATIO = 1.5
GOAL_XDIST_SPEEDUP = 1.8
TURNS = 10
TASK = "Greet each of the nine guests by name, one call each, then finish."
CROSSOVER_SIZES = (5, 10, 20, 40, 70, 100, 150)

AGENT = f'''
"""The benchmark's agent: greet nine guests, then finish (10 model calls)."""
from looplet import BaseToolRegistry, PermissionEngine, ToolCall, ToolSpec

TASK = {TASK!r}
GUESTS = [f"Guest {{i}}" for i in range(1, {TURNS})]


def tools():
    registry = BaseToolRegistry()
    registry.register(ToolSpec(name="greet", description="Greet someone by name.",
                               parameters={{"name": "str"}},
                               execute=lambda *, name: {{"greeting": f"Hello, {{name}}!"}}))
    registry.register(ToolSpec(name="done", description="Finish with a short answer.",
                               parameters={{"answer": "str"}},
                               execute=lambda *, answer: {{"answer": answer}}))
    return registry


def permissions():
    return PermissionEngine().allow("greet")


def replies():
    calls = [ToolCall("greet", {{"name": n}}, call_id=f"call_{{i}}") for i, n in enumerate(GUESTS)]
    return [*calls, ToolCall("done", {{"answer": "Greeted all nine."}}, call_id="call_done")]


def run_loop(llm):
    from looplet import LoopConfig, composable_loop
    from looplet.permissions import PermissionHook

    loop = composable_loop(llm=llm, tools=tools(), task=TASK, config=LoopConfig(),
                           hooks=[PermissionHook(permissions())])
    for step in loop:
        print(step.pretty())
    return loop.trajectory
'''

SDK_ALONE = '''
"""The eval's 10 requests through the openai SDK alone: one client per process, its
transport answering with the recorded responses (no network, no cassette)."""
import json
from pathlib import Path

import httpx2
import openai

_EXCHANGES = json.loads((Path(__file__).parent / "exchanges.json").read_text())
_BODIES = [exchange["request"]["body"]["json"] for exchange in _EXCHANGES]
_RESPONSES = [json.dumps(e["response"]["body"]["json"]).encode() for e in _EXCHANGES]
_answers = iter(())


def _answer(request):
    return httpx2.Response(200, content=next(_answers),
                           headers={"content-type": "application/json"})


CLIENT = openai.OpenAI(base_url="http://sdk-alone.invalid/v1", api_key="sk-bench",
                       max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(_answer)))


def ten_calls():
    global _answers
    _answers = iter(_RESPONSES)
    for body in _BODIES:
        CLIENT.chat.completions.create(**body)
'''

CONFTEST = """
import pytest
import bench_agent

@pytest.fixture
def looplet_tools():
    return bench_agent.tools()

@pytest.fixture
def looplet_permissions():
    return bench_agent.permissions()
"""

EVAL = """
from bench_agent import TASK

def eval_greets_nine(looplet_agent):
    traj = looplet_agent.run(TASK)
    assert traj.called("done") and len(traj.steps) == 10
"""

LOOP_TEST = """
from looplet.testing import MockLLMBackend

import bench_agent

def test_greets_nine():
    traj = bench_agent.run_loop(MockLLMBackend(bench_agent.replies()))
    assert traj.called("done") and len(traj.steps) == 10
"""

FLOOR_TEST = """
from looplet.testing import MockLLMBackend

import bench_agent
import bench_sdk

def test_greets_nine():
    bench_sdk.ten_calls()
    traj = bench_agent.run_loop(MockLLMBackend(bench_agent.replies()))
    assert traj.called("done") and len(traj.steps) == 10
"""


def env(root: Path) -> dict[str, str]:
    """The environment of a pytest run importing looplet from the checkout ``root``."""
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), out.get("PYTHONPATH")]))
    out["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTEST_ADDOPTS", "CI"):
        out.pop(name, None)
    for name in list(out):
        if name.startswith(("OPENAI_", "ANTHROPIC_")):
            del out[name]
    return out


def pytest_args(*extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "xdist", "-p", "no:cacheprovider", "-q", *extra]


def eval_args(workers: int) -> list[str]:
    evals = ("-p", "pytest_looplet.plugin", "--looplet-evals", "evals")
    return pytest_args(*evals, "-n", str(workers))


def run(folder: Path, commands: list[list[str]], environ: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the processes and their children) of
    ``commands`` run at once, in ``folder``, until the last one ends."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    processes = [
        subprocess.Popen(
            args, cwd=folder, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for args in commands
    ]
    outputs = [process.communicate()[0] for process in processes]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for args, process, output in zip(commands, processes, outputs, strict=True):
        if process.returncode != 0:
            text = output.decode(errors="replace")[-3000:]
            raise SystemExit(f"{' '.join(args)} failed in {folder}:\n{text}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


# -- the suites -----------------------------------------------------------------------------


def record_cassette(folder: Path, root: Path) -> Path:
    """Record the eval's cassette once, through the plugin, from the loopback server."""
    from looplet.testing import ScriptedModelServer, call, tool_reply

    guests = [f"Guest {i}" for i in range(1, TURNS)]
    script = [tool_reply(call("greet", {"name": name})) for name in guests]
    script.append(tool_reply(call("done", {"answer": "Greeted all nine."})))
    source = folder / "record"
    (source / "evals").mkdir(parents=True)
    (source / "evals" / "eval_greeter.py").write_text(EVAL)
    for name, text in (("bench_agent.py", AGENT), ("conftest.py", CONFTEST)):
        (source / name).write_text(text)
    (source / "pytest.ini").write_text("[pytest]\n")
    environ = env(root)
    with ScriptedModelServer(script) as server:
        environ["OPENAI_BASE_URL"] = server.base_url
        environ["OPENAI_API_KEY"] = "sk-bench-recording"
        run(source, [[*eval_args(0), "--looplet-record-mode=all"]], environ)
    cassette = source / "evals" / "cassettes" / "eval_greeter" / "eval_greets_nine.yaml"
    exchanges = json.loads(cassette.read_text())["interactions"]
    if len(exchanges) != TURNS:
        raise SystemExit(f"the recorded cassette holds {len(exchanges)} exchanges, not {TURNS}")
    return cassette


def write_suite(folder: Path, size: int, cassette: Path, floors: bool = True) -> None:
    """``folder``: ``evals/`` with ``size`` eval files and their cassettes; with ``floors``,
    ``loop/`` and ``floor/`` with ``size`` plain test files each."""
    folder.mkdir()
    for name, text in (("bench_agent.py", AGENT), ("conftest.py", CONFTEST)):
        (folder / name).write_text(text)
    (folder / "bench_sdk.py").write_text(SDK_ALONE)
    exchanges = json.loads(cassette.read_text())["interactions"]
    (folder / "exchanges.json").write_text(json.dumps(exchanges))
    (folder / "pytest.ini").write_text("[pytest]\n")
    kinds = {"loop": LOOP_TEST, "floor": FLOOR_TEST} if floors else {}
    for kind in ("evals", *kinds):
        (folder / kind).mkdir()
    for i in range(size):
        module = f"eval_{i:04d}"
        (folder / "evals" / f"{module}.py").write_text(EVAL)
        target = folder / "evals" / "cassettes" / module / "eval_greets_nine.yaml"
        target.parent.mkdir(parents=True)
        shutil.copyfile(cassette, target)
        for kind, text in kinds.items():
            (folder / kind / f"test_{i:04d}.py").write_text(text)


def sdk_alone_ms(cassette: Path, repeats: int = 41) -> tuple[float, float]:
    """Median wall and CPU ms of the eval's 10 requests through the ``openai`` SDK alone, in
    this process (what ``floor/`` does per test, without pytest around it)."""
    import httpx2
    import openai

    exchanges = json.loads(cassette.read_text())["interactions"]
    bodies = [exchange["request"]["body"]["json"] for exchange in exchanges]
    responses = [json.dumps(e["response"]["body"]["json"]).encode() for e in exchanges]
    answers: Iterator[bytes] = iter(())

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=next(answers), headers={"content-type": "application/json"}
        )

    client = openai.OpenAI(
        base_url="http://sdk-alone.invalid/v1",
        api_key="sk-bench",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )
    walls, cpus = [], []
    with client:
        for rep in range(repeats + 3):
            answers = iter(responses)
            gc.collect()
            start, start_cpu = time.perf_counter(), time.process_time()
            for body in bodies:
                client.chat.completions.create(**body)
            if rep >= 3:
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - start_cpu)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


# -- measuring ------------------------------------------------------------------------------

#: Each command's folder, the arguments of the processes it runs at once, and environment.
Commands = dict[str, tuple[Path, list[list[str]], dict[str, str]]]


def alternate(commands: Commands, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) seconds of each command over ``rounds`` alternating rounds.

    Each process gets a ``--basetemp`` of its own, which pytest empties when it starts: so a
    run pays for removing what its own previous run left there (as a suite run again and
    again does), not for another command's, or another program's, ``pytest-of-<user>``
    folders.
    """
    commands = {
        name: (
            folder,
            [
                [*args, f"--basetemp={folder / 'tmp' / _slug(name)}-{i}"]
                for i, args in enumerate(argv)
            ],
            environ,
        )
        for name, (folder, argv, environ) in commands.items()
    }
    for folder, args, environ in commands.values():
        (folder / "tmp").mkdir(exist_ok=True)
        run(folder, args, environ)  # warm-up: .pyc files, rewritten eval modules
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, (folder, args, environ) in commands.items():
            wall, cpu = run(folder, args, environ)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in walls}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs=2, default=[200, 1000], metavar=("SMALL", "LARGE")
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per command (default 3)")
    parser.add_argument("--crossover", action="store_true", help="only time 5-150 evals")
    parser.add_argument("--profile", action="store_true", help="only cProfile a -n 0 run")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)"
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout whose evals run alternated with these"
    )
    options = parser.parse_args()
    small, large = sorted(options.sizes)
    roots = {"": options.root.resolve()}
    if options.baseline is not None:
        roots["baseline "] = options.baseline.resolve()
    top = Path(tempfile.mkdtemp(prefix="looplet-bench-evals-"))
    try:
        cassette = record_cassette(top, roots[""])
        if options.profile:
            write_suite(top / "suite", small, cassette, floors=False)
            return profile(top / "suite", roots[""])
        if options.crossover:
            crossover(top, cassette, roots, max(options.rounds, 5))
            return 0
        commands: Commands = {}
        for size in (small, large):
            folder = top / f"suite{size}"
            write_suite(folder, size, cassette)
            for label, root in roots.items():
                for workers in (0, 2):
                    name = f"{label}evals {size} -n {workers}"
                    commands[name] = (folder, [eval_args(workers)], env(root))
            shards = [[*eval_args(0), f"--looplet-shard={i}/2"] for i in (1, 2)]
            commands[f"evals {size} 2 shards"] = (folder, shards, env(roots[""]))
            for kind in ("floor", "loop"):
                commands[f"{kind} {size} -n 0"] = (folder, [pytest_args(kind)], env(roots[""]))
        results = alternate(commands, options.rounds)
        sdk = sdk_alone_ms(cassette)
        report(results, sdk, small, large, options.rounds, list(roots))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return 0


def report(
    results: dict[str, tuple[float, float]],
    sdk: tuple[float, float],
    small: int,
    large: int,
    rounds: int,
    labels: list[str],
) -> None:
    def slope(kind: str, index: int) -> float:
        low, high = results[f"{kind} {small} -n 0"][index], results[f"{kind} {large} -n 0"][index]
        return (high - low) / (large - small) * 1000

    print(f"median of {rounds} alternating rounds after a warm-up; nproc = {os.cpu_count()}\n")
    print("| run                              | wall s | cpu s |")
    print("|----------------------------------|-------:|------:|")
    for name, (wall, cpu) in results.items():
        print(f"| {name:32} | {wall:6.2f} | {cpu:5.2f} |")
    print(f"\nper eval at -n 0, slope {small} -> {large} evals (ms)   wall     cpu")
    rows = [(f"{label}replayed 10-turn eval", f"{label}evals") for label in labels]
    rows += [("floor: SDK alone + loop, plain test", "floor"), ("  the loop alone", "loop")]
    for title, kind in rows:
        print(f"  {title:44} {slope(kind, 0):7.1f} {slope(kind, 1):7.1f}")
    print(f"  {'  the SDK alone, in this process':44} {sdk[0]:7.1f} {sdk[1]:7.1f}")
    for label in labels:
        ratio_wall = slope(f"{label}evals", 0) / slope("floor", 0)
        ratio_cpu = slope(f"{label}evals", 1) / slope("floor", 1)
        print(f"  {label + 'eval / floor':44} {ratio_wall:6.2f}x {ratio_cpu:6.2f}x")
    print("\nwall s, and the speed-up over -n 0          -n 0        -n 2    2 shards at once")
    for label in labels:
        for size in (small, large):
            serial = results[f"{label}evals {size} -n 0"][0]
            parallel = results[f"{label}evals {size} -n 2"][0]
            line = f"  {label}{size} evals".ljust(44)
            line += f"{serial:6.2f}  {parallel:6.2f} {serial / parallel:4.2f}x"
            if not label:
                shards = results[f"evals {size} 2 shards"][0]
                line += f"  {shards:6.2f} {serial / shards:4.2f}x"
            print(line)
    ratio = slope("evals", 0) / slope("floor", 0)
    speedup = results[f"evals {large} -n 0"][0] / results[f"evals {large} -n 2"][0]
    print("\ngoal                                         figure   met?")
    print(
        f"per eval <= {GOAL_FLOOR_RATIO}x its floor (wall)             {ratio:5.2f}x   "
        f"{'yes' if ratio <= GOAL_FLOOR_RATIO else 'no'}"
    )
    print(
        f"{large} evals: -n 2 >= {GOAL_XDIST_SPEEDUP}x faster than -n 0   {speedup:5.2f}x   "
        f"{'yes' if speedup >= GOAL_XDIST_SPEEDUP else 'no'}"
    )


def crossover(top: Path, cassette: Path, roots: dict[str, Path], rounds: int) -> None:
    """Wall time of small suites at -n 0 and -n 2: where -n 2 starts to pay."""
    commands: Commands = {}
    for size in CROSSOVER_SIZES:
        folder = top / f"cross{size}"
        write_suite(folder, size, cassette, floors=False)
        for label, root in roots.items():
            for workers in (0, 2):
                commands[f"{label}{size} -n {workers}"] = (folder, [eval_args(workers)], env(root))
    results = alternate(commands, rounds)
    for label in roots:
        print(f"\n{label}crossover: median wall of {rounds} alternating rounds")
        print("| evals | -n 0 s | -n 2 s | -n 2 speed-up |")
        print("|------:|-------:|-------:|--------------:|")
        for size in CROSSOVER_SIZES:
            serial = results[f"{label}{size} -n 0"][0]
            parallel = results[f"{label}{size} -n 2"][0]
            print(f"| {size:5} | {serial:6.2f} | {parallel:6.2f} | {serial / parallel:12.2f}x |")


def profile(folder: Path, root: Path) -> int:
    """cProfile one -n 0 run of the small suite: the top functions by cumulative and own time
    (cProfile inflates Python-heavy code such as the SDK's request building: read shares)."""
    out = folder / "evals.prof"
    environ = env(root)
    run(folder, [eval_args(0)], environ)
    run(folder, [[sys.executable, "-m", "cProfile", "-o", str(out), *eval_args(0)[1:]]], environ)
    import pstats

    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
