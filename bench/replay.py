"""What replaying a cassette costs per call, and how long loading one takes.

Run by hand::

    python bench/replay.py             # the table (about 90 s)
    python bench/replay.py --calls 50  # a smaller cassette

The same N distinct chat completions (a system prompt, two tool definitions and a numbered
question, as looplet's OpenAIBackend sends them) are made through the real ``openai`` SDK:

* **live**: against the loopback ``ScriptedModelServer`` (real HTTP on 127.0.0.1);
* **replay**: inside ``use_cassette(path, "none")``, the cassette recorded from the live run;
  the figure covers the calls only, the cassette being loaded before the clock starts;
* **SDK alone**: with an ``httpx2.MockTransport`` returning a canned completion as the
  client's transport: the SDK's own cost with no network and no cassette, the floor replay
  is compared with;
* **vcrpy's own replay**, for reference: ``vcr.use_cassette`` on vcrpy's YAML recording of
  the same calls, matched on method, host, path and body.

Each per-call figure is the median over repetitions (after warm-up) of a whole pass of N
calls divided by N. The load time is the median of entering and leaving
``with use_cassette(path, "none")`` on the N-exchange cassette: reading and checking the file,
indexing the exchanges, applying and removing vcrpy's patches; beside it, vcrpy's own YAML
loader on its recording of the same calls.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2
import openai
import vcr
from vcr.serializers import yamlserializer

from looplet.cassettes import use_cassette
from looplet.testing import ScriptedModelServer, text_reply

REPEATS = 7
WARMUP = 1
#: Repetitions of the rows that take seconds a pass (live HTTP, vcrpy's own replay).
SLOW_REPEATS = 3
GOAL_REPLAY_RATIO = 1.2
GOAL_LOAD_MS = 10.0
SYSTEM = (
    "You are a support agent for an online shop. Use the tools to look orders up, and call "
    "done with a short answer for the customer when you have one. Never invent order data."
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
    for name, description in (("get_order", "Look an order up."), ("done", "Finish."))
]


def request(i: int) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Question {i}: where is order {1000 + i}?"},
        ],
        "tools": TOOLS,
        "max_tokens": 2000,
        "temperature": 0.2,
    }


def calls(client: openai.OpenAI, n: int) -> None:
    for i in range(n):
        client.chat.completions.create(**request(i))


def per_call_us(
    run: Callable[[], None],
    n: int,
    setup: Callable[[], None] = lambda: None,
    repeats: int = REPEATS,
) -> float:
    """Median microseconds per call of ``run`` (N calls), after warm-up; ``setup`` untimed."""
    times = []
    for rep in range(WARMUP + repeats):
        setup()
        gc.collect()
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        if rep >= WARMUP:
            times.append(elapsed)
    return statistics.median(times) / n * 1e6


def median_ms(run: Callable[[], None], repeats: int = 21) -> float:
    times = []
    for _ in range(repeats + 2):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:]) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per pass (default 200)")
    n = parser.parse_args().calls
    folder = Path(tempfile.mkdtemp(prefix="looplet-bench-"))
    ours, theirs = folder / "replay.yaml", folder / "vcrpy.yaml"
    script = [text_reply(f"Order {1000 + i} shipped yesterday.") for i in range(n)]

    with ScriptedModelServer(script) as server:
        url = server.base_url
        client = openai.OpenAI(base_url=url, api_key="sk-bench", max_retries=0)
        live = per_call_us(
            lambda: calls(client, n), n, setup=lambda: server.reset(), repeats=SLOW_REPEATS
        )
        server.reset()
        with use_cassette(ours, "all"):
            calls(client, n)
        server.reset()
        with vcr.use_cassette(str(theirs), record_mode="all"):
            calls(client, n)

    canned = json.loads(ours.read_text())["interactions"][0]["response"]["body"]["json"]
    body = json.dumps(canned).encode()
    mock = httpx2.MockTransport(
        lambda req: httpx2.Response(200, content=body, headers={"content-type": "application/json"})
    )
    alone_client = openai.OpenAI(
        base_url="http://sdk-alone.invalid/v1",
        api_key="sk-bench",
        max_retries=0,
        http_client=httpx2.Client(transport=mock),
    )

    # Replay and SDK-alone passes alternate, so that a slower spell of a noisy machine
    # weighs on both figures of the ratio alike.
    replay_times: list[float] = []
    alone_times: list[float] = []
    for _ in range(WARMUP + REPEATS):
        with use_cassette(ours, "none") as cassette:
            gc.collect()
            start = time.perf_counter()
            calls(client, n)
            replay_times.append(time.perf_counter() - start)
        assert cassette.played == n
        gc.collect()
        start = time.perf_counter()
        calls(alone_client, n)
        alone_times.append(time.perf_counter() - start)
    replayed = statistics.median(replay_times[WARMUP:]) / n * 1e6
    alone = statistics.median(alone_times[WARMUP:]) / n * 1e6

    def vcrpy_replay() -> None:
        with vcr.use_cassette(
            str(theirs), record_mode="none", match_on=("method", "host", "path", "body")
        ):
            calls(client, n)

    vcrpy_us = per_call_us(vcrpy_replay, n, repeats=SLOW_REPEATS)

    text = ours.read_text()
    enter_ms = median_ms(lambda: use_cassette(ours, "none").__enter__().__exit__(None, None, None))
    vcrpy_text = theirs.read_text()
    vcrpy_load_ms = median_ms(lambda: yamlserializer.deserialize(vcrpy_text), repeats=5)

    ratio = replayed / alone
    print(
        f"{n} calls; per call, median of {REPEATS} passes ({SLOW_REPEATS} for live and "
        f"vcrpy) after {WARMUP} warm-up\n"
    )
    print(f"{'':44}{'µs/call':>9}{'vs SDK alone':>14}")
    for label, value in (
        ("live, loopback server (real HTTP)", live),
        ("replay, use_cassette(..., 'none')", replayed),
        ("SDK alone, httpx2.MockTransport", alone),
        ("vcrpy's own replay (YAML, body matcher)", vcrpy_us),
    ):
        print(f"{label:44}{value:9.0f}{value / alone:13.2f}x")
    print(f"\ncassette: {len(text) / 1e6:.2f} MB, {n} exchanges")
    print(f"{'enter + exit use_cassette (load, patch)':44}{enter_ms:8.2f} ms")
    print(f"{'vcrpy YAML load of the same calls':44}{vcrpy_load_ms:8.2f} ms")
    print("\ngoal                                  figure     met?")
    met_ratio = "yes" if ratio <= GOAL_REPLAY_RATIO else "no"
    met_load = "yes" if enter_ms < GOAL_LOAD_MS else "no"
    print(f"replay <= {GOAL_REPLAY_RATIO}x SDK alone               {ratio:5.2f}x     {met_ratio}")
    print(
        f"load < {GOAL_LOAD_MS:.0f} ms for {n} exchanges          {enter_ms:5.2f} ms   {met_load}"
    )
    alone_client.close()
    client.close()
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
