"""``looplet_agent.run`` passes the loop's own ``conversation=``, ``session_log=`` and ``stream=``
through: a two-turn conversation, streamed and logged, recorded once and replayed offline."""

from __future__ import annotations

import json

import pytest

from tests._greeter import plugin_runner, recording

pytest_plugins = ["pytester"]

EVAL = """
from looplet.conversation import Conversation
from looplet.session import SessionLog

def eval_two_turns_streamed_and_logged(looplet_agent):
    conv, events, log = Conversation(), [], SessionLog()
    first = looplet_agent.run(
        "Greet Alice, then finish.", conversation=conv, stream=events.append, session_log=log
    )
    second = looplet_agent.run("Greet Alice once more, then finish.", conversation=conv)
    assert len(conv.turns) == 2 and looplet_agent.runs == [first, second]
    # The second turn was sent the whole first one, then its own task.
    assert list(second.messages[: len(first.messages)]) == list(first.messages)
    assert second.messages[len(first.messages)].content.startswith("Greet Alice once more")
    kinds = [event.kind for event in events]
    assert kinds[0] == "loop_start" and kinds[-1] == "loop_end" and "llm_chunk" in kinds
    assert [step.number for step in first.steps] == [1, 2]
    assert [e.step for e in log.entries if e.kind == "step"] == [1, 2]
    try:  # a typo in an override names what run() takes
        looplet_agent.run("Greet Alice, then finish.", conversaton=None)
    except TypeError as err:
        assert "conversation, session_log, stream" in str(err)
    else:
        raise AssertionError("an unknown override was accepted")
"""


@pytest.mark.parametrize("workers", [None, "2"])
def test_conversation_stream_and_session_log_reach_the_loop_and_replay_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str | None
) -> None:
    run = plugin_runner(pytester, monkeypatch, EVAL)
    with recording(monkeypatch):
        run("--looplet-record-mode=all").assert_outcomes(passed=1)
    xdist = ("-p", "xdist", "-n", workers) if workers else ()
    result = run("--looplet-report=r.json", *xdist)  # no server, no key: replay only
    result.assert_outcomes(passed=1)
    # The report holds the last run's figures: the second turn's two steps.
    result.stdout.fnmatch_lines(["PASS *1.00*2*done*eval_two_turns_streamed_and_logged"])


CACHED = """
import json

import pytest
from looplet import LoopConfig
from looplet.cache import CachePolicy
from looplet.types import StopReason, Trajectory, Usage
from pytest_looplet.scoring import record_trajectory

WRITES = Trajectory(usage=Usage(1000, 100, cache_write_tokens=1000), stop_reason=StopReason.DONE)

def eval_five_minute_cache(request):
    record_trajectory(request, WRITES)

def eval_one_hour_cache(request):
    record_trajectory(request, WRITES, cache_ttl="1h")

@pytest.fixture
def looplet_config():
    return LoopConfig(cache_policy=CachePolicy(ttl="1h"))

def eval_agent_with_an_hour_long_cache(looplet_agent):
    assert looplet_agent.config.cache_policy.ttl == "1h"
"""


@pytest.mark.parametrize("workers", [(), ("-p", "xdist", "-n", "2")])
def test_an_hour_long_prompt_cache_prices_its_writes_at_twice_the_input_price(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: tuple[str, ...]
) -> None:
    from looplet.pricing import PRICES
    from pytest_looplet.fixtures import _cache_ttl

    run = plugin_runner(pytester, monkeypatch, CACHED)
    result = run(
        "--looplet-report=r.json",
        "--looplet-model=claude-sonnet-4",
        "-k",
        "cache and not agent",
        *workers,
    )
    result.assert_outcomes(passed=2)
    items = {
        e["eval"].split("::")[1]: e["items"][0]
        for e in json.loads((pytester.path / "r.json").read_text())["evals"]
    }
    price_in = PRICES["claude-sonnet-4"][0]
    extra = items["eval_one_hour_cache"]["cost_usd"] - items["eval_five_minute_cache"]["cost_usd"]
    assert extra == pytest.approx(1000 * (2.0 - 1.25) * price_in / 1e6)
    # The agent fixture hands record_trajectory its config's lifetime.
    from looplet import LoopConfig
    from looplet.cache import CachePolicy

    assert _cache_ttl(LoopConfig(cache_policy=CachePolicy(ttl="1h"))) == "1h"
    assert _cache_ttl(LoopConfig()) == "5m"
