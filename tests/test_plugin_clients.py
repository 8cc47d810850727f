"""The SDK client ``looplet_llm`` wraps is built once per worker and configuration and shared by
the evals, while each eval still replays its own cassette (at ``-n 0`` and ``-n 2``); and
:class:`~pytest_looplet.clients.SDKClients` itself: one client per configuration, nothing
carried from one eval to the next, every client closed at the end.

The end-to-end runs are ``pytest --looplet-evals evals`` in a subprocess, as a user runs them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from pytest_looplet.clients import SDKClients
from tests._greeter import CONFTEST, recording

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

SHARED = """
from looplet import ANY

SEEN = []  # the SDK client of every eval this worker ran, in order


def greets(looplet_agent, looplet_llm, name):
    SEEN.append(looplet_llm._client)
    traj = looplet_agent.run(f"Greet {name}, then finish.")
    assert traj == [("greet", {"name": name}), ("done", {"answer": ANY})]
    assert looplet_llm._client is SEEN[0], "each eval built its own SDK client"


def eval_alice(looplet_agent, looplet_llm):
    greets(looplet_agent, looplet_llm, "Alice")


def eval_bob(looplet_agent, looplet_llm):
    greets(looplet_agent, looplet_llm, "Bob")


def eval_alice_again(looplet_agent, looplet_llm):
    greets(looplet_agent, looplet_llm, "Alice")


def eval_bob_again(looplet_agent, looplet_llm):
    greets(looplet_agent, looplet_llm, "Bob")
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``pytest --looplet-evals evals ...`` in a subprocess, with the plugin and xdist only."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("CI", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    (pytester.path / "evals").mkdir()
    (pytester.path / "evals" / "conftest.py").write_text(CONFTEST)

    def run(*args: str) -> pytest.RunResult:
        argv = ("-p", "pytest_looplet.plugin", "-p", "xdist", "-p", "no:cacheprovider")
        return pytester.runpytest_subprocess(*argv, "--looplet-evals", "evals", *args)

    return run


def write_eval(pytester: pytest.Pytester, name: str, source: str) -> None:
    (pytester.path / "evals" / name).write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.mark.parametrize(
    "workers", [("-n", "0"), ("-n", "2", "--dist", "loadfile")], ids=["n0", "n2"]
)
def test_evals_share_one_client_and_each_replays_its_own_cassette(
    run: Run,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    workers: tuple[str, ...],
) -> None:
    write_eval(pytester, "eval_shared.py", SHARED)
    with recording(monkeypatch):  # a cassette each: two of Alice's, two of Bob's
        run("-n", "0", "--looplet-record-mode=all").assert_outcomes(passed=4)
    folder = pytester.path / "evals" / "cassettes" / "eval_shared"
    assert sorted(path.stem for path in folder.iterdir()) == [
        "eval_alice",
        "eval_alice_again",
        "eval_bob",
        "eval_bob_again",
    ]

    # The server is gone: replay only. One worker runs the file (loadfile), alternating
    # cassettes through one client: an eval given another's cassette would fail to match.
    result = run(*workers, "-v")
    result.assert_outcomes(passed=4)
    if "2" in workers:
        result.stdout.fnmatch_lines(["*gw[01]*PASSED*eval_alice_again*"])


CLOSES = """
from looplet import ANY

CLOSED = []


def eval_1_closes_its_backend(looplet_agent, looplet_llm):
    traj = looplet_agent.run("Greet Alice, then finish.")
    looplet_llm.close()
    CLOSED.append(looplet_llm._client)
    assert traj == [("greet", {"name": "Alice"}), ("done", {"answer": ANY})]


def eval_2_still_replays(looplet_agent, looplet_llm):
    assert CLOSED and looplet_llm._client is not CLOSED[0]
    traj = looplet_agent.run("Greet Bob, then finish.")
    assert traj == [("greet", {"name": "Bob"}), ("done", {"answer": ANY})]
"""


def test_an_eval_that_closes_its_backend_leaves_the_next_one_a_working_client(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_eval(pytester, "eval_closes.py", CLOSES)
    with recording(monkeypatch):
        run("-n", "0", "--looplet-record-mode=all").assert_outcomes(passed=2)
    run("-n", "0").assert_outcomes(passed=2)


# ------------------------------------------------------------------ SDKClients


def test_one_client_per_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_ORG_ID", raising=False)
    clients = SDKClients()
    first = clients.get("openai", "sk-one", "http://127.0.0.1:9/v1")
    assert clients.get("openai", "sk-one", "http://127.0.0.1:9/v1") is first
    assert clients.built == 1
    assert first.max_retries == 0  # looplet's backends retry, not the SDK

    others = [
        clients.get("openai", "sk-two", "http://127.0.0.1:9/v1"),
        clients.get("openai", "sk-one", "http://127.0.0.1:8/v1"),
        clients.get("anthropic", "sk-one", "http://127.0.0.1:9"),
    ]
    monkeypatch.setenv("OPENAI_ORG_ID", "org-other")  # the SDK reads it when built
    others.append(clients.get("openai", "sk-one", "http://127.0.0.1:9/v1"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")  # so does its HTTP client
    others.append(clients.get("openai", "sk-one", "http://127.0.0.1:9/v1"))
    assert len({id(client) for client in [first, *others]}) == 6
    assert clients.built == 6
    clients.close()
    assert all(client.is_closed() for client in [first, *others])


def test_nothing_of_one_eval_reaches_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    clients = SDKClients()
    client = clients.get("openai", "sk-one", "http://127.0.0.1:9/v1")
    client._client.cookies.set("session", "from-the-last-eval")
    again = clients.get("openai", "sk-one", "http://127.0.0.1:9/v1")
    assert again is client and len(again._client.cookies) == 0

    client.close()  # an eval closed its backend
    fresh = clients.get("openai", "sk-one", "http://127.0.0.1:9/v1")
    assert fresh is not client and not fresh.is_closed()
    assert clients.built == 2
    clients.close()


def test_a_changing_environment_does_not_pile_up_open_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clients = SDKClients(limit=3)
    built = []
    for i in range(5):
        monkeypatch.setenv("OPENAI_PROJECT_ID", f"proj-{i}")
        built.append(clients.get("openai", "sk-one", None))
    assert [client.is_closed() for client in built] == [True, True, False, False, False]
    clients.close()
    assert all(client.is_closed() for client in built)
