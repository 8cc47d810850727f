"""The fixtures that turn an agent into a pytest suite: a cassette per test, a backend wired
to it, and ``looplet_agent.run(task)`` returning the :class:`~looplet.types.Trajectory`.

Scopes follow cost: the settings are read once per session, everything else is per test, so
tests stay independent under pytest-xdist. Configure them the pytest way, by defining a
fixture of the same name in a ``conftest.py`` or in the eval file (``looplet_tools`` at
least: the plugin cannot know your agent's tools). Nothing heavy is imported until a fixture
is used: looplet, vcrpy and the provider SDK load in the fixture bodies.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_looplet.settings import cassette_failed_key, looplet_settings

if TYPE_CHECKING:
    from looplet import BaseToolRegistry, LoopConfig, PermissionEngine, Step, Trajectory
    from looplet.cassettes import Cassette
    from looplet.evals.judge import Judge
    from pytest_looplet.clients import SDKClients
    from pytest_looplet.crash import ProgressLog

__all__ = [
    "LoopletAgent",
    "looplet_agent",
    "looplet_cassette",
    "looplet_cassette_config",
    "looplet_cassette_path",
    "looplet_config",
    "looplet_hooks",
    "looplet_judge",
    "looplet_llm",
    "looplet_model",
    "looplet_permissions",
    "looplet_provider",
    "looplet_record_mode",
    "looplet_tools",
    "looplet_workspace",
]

# What a folder name keeps of a test's name; the rest becomes "_".
_UNSAFE_NAME = re.compile(r"[^\w.=+-]")


@pytest.fixture(scope="session")
def looplet_record_mode(pytestconfig: pytest.Config) -> str:
    """Session: the cassette record mode (``--looplet-record-mode``; ``none`` by default)."""
    return looplet_settings(pytestconfig).record_mode


@pytest.fixture(scope="session")
def looplet_provider(pytestconfig: pytest.Config) -> str:
    """Session: ``openai`` or ``anthropic`` (``--looplet-provider``; default ``openai``)."""
    return looplet_settings(pytestconfig).provider


@pytest.fixture(scope="session")
def looplet_model(pytestconfig: pytest.Config, looplet_provider: str) -> str:
    """Session: the model name: ``--looplet-model``, else ``OPENAI_MODEL`` /
    ``ANTHROPIC_MODEL``, else the provider's backend's ``DEFAULT_MODEL`` (``gpt-4o-mini``)."""
    chosen = looplet_settings(pytestconfig).model
    env = os.environ.get(f"{looplet_provider.upper()}_MODEL")
    return chosen or env or _default_model(looplet_provider)


def _default_model(provider: str) -> str:
    # The backend's own default, defined once there (its module loads no SDK).
    if provider == "anthropic":
        from looplet.backends import anthropic

        return anthropic.DEFAULT_MODEL
    from looplet.backends import openai

    return openai.DEFAULT_MODEL


@pytest.fixture
def looplet_cassette_path(request: pytest.FixtureRequest) -> Path:
    """Per test: ``cassettes/<module>/<test name>[<params>].yaml`` beside the test file.

    Characters a file name cannot hold become ``_``; when that changed the name, a short
    hash of the real one is appended (``eval_x[a_b]-1f2e3d4c.yaml``), so ``a b`` and ``a/b``
    never share a file. Each run of a repeated eval has its own, ``...-rep<N>.yaml``, named
    without the run count, so raising ``repeat`` keeps the cassettes already recorded.
    Override it to name cassettes your way; collection then leaves them unchecked.
    """
    from pytest_looplet.cassettes import cassette_path

    return cassette_path(request.node)


@pytest.fixture
def looplet_cassette_config(pytestconfig: pytest.Config) -> dict[str, Any]:
    """Per test: the ``use_cassette()`` keyword arguments of every eval's cassette.

    ``match_on``, ``ignore_fields`` and ``filter_headers``, from the ini keys
    ``looplet_cassette_match_on``, ``looplet_cassette_ignore_body_fields`` (added to looplet's
    volatile fields) and ``looplet_cassette_filter_headers``. Override it to add any other
    argument, e.g. ``return {**looplet_cassette_config, "allow_repeats": True}``.
    """
    from pytest_looplet.cassettes import ini_cassette_config

    try:
        return ini_cassette_config(pytestconfig)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def looplet_cassette(
    request: pytest.FixtureRequest,
    looplet_cassette_path: Path,
    looplet_record_mode: str,
    looplet_cassette_config: dict[str, Any],
) -> Iterator[Cassette]:
    """Per test: the test's cassette, active for the whole test (``with use_cassette``).

    In ``none`` mode a missing cassette fails the test with the command that records it. A
    request that does not match the cassette fails the test with what changed; a test that
    swallowed that error still fails, when the cassette closes.
    """
    from looplet.cassettes import CassetteError, use_cassette
    from looplet.errors import ConfigurationError
    from pytest_looplet.cassettes import checked_cassette_config, renamed_cassette_hint

    if looplet_record_mode == "none" and not looplet_cassette_path.exists():
        hint = renamed_cassette_hint(request.node, looplet_cassette_path)
        if hint is not None:
            pytest.fail(hint, pytrace=False)
    try:
        settings = checked_cassette_config(looplet_cassette_config)
        cassette = use_cassette(looplet_cassette_path, looplet_record_mode, **settings)
    except ConfigurationError as exc:
        pytest.fail(f"looplet_cassette_config: {exc}", pytrace=False)
    except ValueError as exc:
        pytest.fail(str(exc), pytrace=False)
    with cassette:
        yield cassette
        if request.node.stash.get(cassette_failed_key, False):
            # The test already failed with this cassette's error: report it once, not twice.
            with contextlib.suppress(CassetteError):
                cassette.__exit__(None, None, None)


@pytest.fixture(scope="session")
def _looplet_sdk_clients() -> Iterator[SDKClients]:
    """Session: the provider SDK clients the evals share (closed when the session ends)."""
    from pytest_looplet.clients import SDKClients

    clients = SDKClients()
    yield clients
    clients.close()


@pytest.fixture
def looplet_llm(
    looplet_cassette: Cassette,
    looplet_provider: str,
    looplet_model: str,
    _looplet_sdk_clients: SDKClients,
) -> Any:
    """Per test: a backend for the provider, its HTTP recorded to or replayed from the cassette.

    Replaying needs no API key and no network: the client is pointed at the base URL the
    cassette was recorded from. Recording uses ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` (or
    the ``ANTHROPIC_*`` twins). The SDK client is built once per worker and configuration
    and shared by the evals (:mod:`pytest_looplet.clients`); the cassette is the test's own.
    """
    env = looplet_provider.upper()
    replaying = _replays_only(looplet_cassette)
    base_url = (
        looplet_cassette.recorded_base_url(looplet_provider)
        if replaying
        else os.environ.get(f"{env}_BASE_URL")
    )
    api_key = os.environ.get(f"{env}_API_KEY") or ("looplet-replay" if replaying else None)
    if api_key is None:
        pytest.fail(
            f"recording {looplet_cassette.path} needs {env}_API_KEY (and {env}_BASE_URL for "
            f"a non-default endpoint). To replay instead, run with --looplet-record-mode=none.",
            pytrace=False,
        )
    client = _looplet_sdk_clients.get(looplet_provider, api_key, base_url)
    if looplet_provider == "anthropic":
        from looplet.backends import AnthropicBackend

        return AnthropicBackend(client, model=looplet_model)
    from looplet.backends import OpenAIBackend

    return OpenAIBackend(client, model=looplet_model)


@pytest.fixture
def looplet_judge(looplet_llm: Any) -> Judge:
    """Per test: an LLM judge on the test's backend, so its calls are in the same cassette.

    ``looplet_judge(rubric, subject)`` returns an ``EvalResult`` (score and the judge's
    reason); a reply that is not a score fails the eval with the reply shown.
    """
    from looplet.evals.judge import Judge

    return Judge(looplet_llm)


@pytest.fixture
def looplet_tools() -> BaseToolRegistry:
    """Per test: your agent's tools. Override it: the plugin cannot know them."""
    pytest.fail(
        "looplet_agent needs your agent's tools: define a `looplet_tools` fixture in "
        "conftest.py (or in the eval file) returning a BaseToolRegistry, e.g.\n"
        "    @pytest.fixture\n"
        "    def looplet_tools():\n"
        "        return BaseToolRegistry([greet, done])",
        pytrace=False,
    )


@pytest.fixture
def looplet_permissions() -> PermissionEngine:
    """Per test: a fail-closed PermissionEngine (every call denied). Override it with rules."""
    from looplet.permissions import PermissionEngine

    return PermissionEngine()


@pytest.fixture
def looplet_hooks() -> list[object]:
    """Per test: extra hooks for the agent's loop (none by default)."""
    return []


@pytest.fixture
def looplet_config() -> LoopConfig:
    """Per test: the agent's LoopConfig (the defaults unless overridden)."""
    from looplet import LoopConfig

    return LoopConfig()


@pytest.fixture(scope="session")
def _looplet_workspaces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session: the folder the tests' workspaces are made in, in pytest's temporary folder."""
    return tmp_path_factory.mktemp("looplet-workspaces")


@pytest.fixture
def looplet_workspace(request: pytest.FixtureRequest, _looplet_workspaces: Path) -> Iterator[Path]:
    """Per test: an empty folder the agent works in (``ToolContext.workspace_root``).

    It is made in the session's ``looplet-workspaces`` folder of pytest's temporary folder
    (``--basetemp``), named after the test. One left empty is removed after the test; one
    holding what the agent wrote stays, for a look after the run, until pytest removes the
    session's temporary folder (three runs later, by default). Unlike ``tmp_path``, making
    one does not scan the folders made before it, so a suite's thousandth costs what its
    first did.
    """
    import tempfile

    name = _UNSAFE_NAME.sub("_", request.node.name)[:60]
    workspace = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_looplet_workspaces))
    yield workspace
    with contextlib.suppress(OSError):  # not empty (or already gone): kept as it is
        workspace.rmdir()


def _cache_ttl(config: LoopConfig) -> str:
    """The prompt-cache lifetime a run's config asks for (it prices cache writes)."""
    policy = config.cache_policy
    return "5m" if policy is None else policy.ttl


#: The loop's own keyword arguments that ``looplet_agent.run`` passes through as they are.
_LOOP_EXTRAS = ("conversation", "session_log", "stream")


class LoopletAgent:
    """Runs the agent under test: ``traj = looplet_agent.run(task)``.

    Every run uses the test's cassette-backed backend, tools, hooks, permission engine and
    config, in the test's workspace, prints each step (pytest shows them when the test
    fails) and reports the trajectory to the plugin's summary and JUnit properties.
    """

    def __init__(
        self,
        request: pytest.FixtureRequest,
        llm: Any,
        tools: BaseToolRegistry,
        permissions: PermissionEngine | None,
        hooks: list[object],
        config: LoopConfig,
        workspace: Path,
    ) -> None:
        self.request = request
        self.llm = llm
        self.tools = tools
        self.permissions = permissions
        self.hooks = hooks
        self.config = config
        self.workspace = workspace
        #: Every trajectory this agent produced in the test, in order.
        self.runs: list[Trajectory] = []
        self._progress: ProgressLog | None = None
        self._progress_checked = False

    @property
    def trajectory(self) -> Trajectory | None:
        """The last run's trajectory."""
        return self.runs[-1] if self.runs else None

    def run(self, task: Any, **overrides: Any) -> Trajectory:
        """Run the agent on ``task`` and return the trajectory.

        ``overrides`` replace the fixtures' values for this run: ``tools``, ``hooks``,
        ``permissions`` (``None`` for no permission checks), ``context``, and any
        ``LoopConfig`` field (``max_steps=3``, ``system_prompt=...``); ``conversation``,
        ``session_log`` and ``stream`` (a function of each event) go to the loop as they are
        (``looplet_agent.run("and now?", conversation=conv)`` runs the conversation's next
        turn, recorded like any run).

        A run that ends in an error (the provider, a hook, a cassette mismatch) re-raises it
        after its partial trajectory is recorded.
        """
        from looplet import composable_loop
        from looplet.errors import LoopletError

        arguments = self._loop_arguments(task, overrides)
        loop = composable_loop(**arguments)
        ttl = _cache_ttl(arguments["config"])
        on_step = self._step_observer()
        try:
            for step in loop:
                on_step(step)
        except LoopletError as err:
            self._record(err.trajectory or loop.trajectory, ttl, failed=True)
            raise
        return self._record(loop.trajectory, ttl)

    async def arun(self, task: Any, **overrides: Any) -> Trajectory:
        """The async twin of :meth:`run`: ``traj = await looplet_agent.arun(task)``.

        Runs ``async_composable_loop`` with the same fixtures and ``overrides``; a sync backend
        (the cassette-backed ``looplet_llm``) and sync tools run in a worker thread.
        """
        from looplet import async_composable_loop
        from looplet.errors import LoopletError

        arguments = self._loop_arguments(task, overrides)
        loop = async_composable_loop(**arguments)
        ttl = _cache_ttl(arguments["config"])
        on_step = self._step_observer()
        try:
            async for step in loop:
                on_step(step)
        except LoopletError as err:
            self._record(err.trajectory or loop.trajectory, ttl, failed=True)
            raise
        return self._record(loop.trajectory, ttl)

    def _loop_arguments(self, task: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        """The loop's keyword arguments: the fixtures' values with ``overrides`` applied."""
        import dataclasses

        from looplet import LoopConfig
        from looplet.permissions import PermissionHook

        tools = overrides.pop("tools", self.tools)
        hooks = list(overrides.pop("hooks", self.hooks))
        permissions = overrides.pop("permissions", self.permissions)
        context = overrides.pop("context", None)
        extras = {k: overrides.pop(k) for k in _LOOP_EXTRAS if k in overrides}
        fields = {f.name for f in dataclasses.fields(LoopConfig)}
        unknown = set(overrides) - fields
        if unknown:
            raise TypeError(
                f"looplet_agent.run() got unknown overrides {sorted(unknown)}; it takes tools, "
                "hooks, permissions, context, conversation, session_log, stream and LoopConfig "
                "fields"
            )
        config = dataclasses.replace(self.config, **overrides)
        if config.workspace_root is None:
            config = dataclasses.replace(config, workspace_root=str(self.workspace))
        if permissions is not None:
            hooks.insert(0, PermissionHook(permissions))
        return {
            "llm": self.llm,
            "tools": tools,
            "task": task,
            "hooks": hooks,
            "config": config,
            "context": context,
            **extras,
        }

    def _step_observer(self) -> Callable[[Step], None]:
        """Prints each step (pytest shows them when the eval fails) and, on an xdist worker,
        logs it where the controller finds it if the worker crashes."""
        progress = self._progress_log()

        def on_step(step: Step) -> None:
            pretty = step.pretty()
            print(pretty)
            if progress is not None:
                progress.add(step, pretty)

        return on_step

    def _progress_log(self) -> ProgressLog | None:
        """The test's progress log (xdist workers only), open from its first step to the
        test's teardown, shared by the test's runs."""
        if self._progress is None and not self._progress_checked:
            from pytest_looplet.crash import progress_log

            self._progress_checked = True
            self._progress = progress_log(self.request)
            if self._progress is not None:
                self.request.addfinalizer(self._progress.close)
        return self._progress

    def _record(self, trajectory: Trajectory, ttl: str, *, failed: bool = False) -> Trajectory:
        from pytest_looplet.scoring import record_trajectory

        self.runs.append(trajectory)
        record_trajectory(self.request, trajectory, cache_ttl=ttl)
        print(trajectory.pretty() if failed else trajectory.pretty().splitlines()[-1])
        return trajectory


@pytest.fixture
def looplet_agent(
    request: pytest.FixtureRequest,
    looplet_llm: Any,
    looplet_tools: BaseToolRegistry,
    looplet_permissions: PermissionEngine | None,
    looplet_hooks: list[object],
    looplet_config: LoopConfig,
    looplet_workspace: Path,
) -> LoopletAgent:
    """Per test: the agent under test; ``looplet_agent.run(task, **overrides)``."""
    return LoopletAgent(
        request,
        looplet_llm,
        looplet_tools,
        looplet_permissions,
        looplet_hooks,
        looplet_config,
        looplet_workspace,
    )


def _replays_only(cassette: Cassette) -> bool:
    mode = cassette.record_mode
    return mode == "none" or (mode == "once" and cassette.path.exists())
