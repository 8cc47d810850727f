"""The plugin's options and ini keys, resolved once per run into :class:`LoopletSettings`.

:func:`add_options` registers each ``--looplet-*`` option with its ini twin; :func:`resolve`
reads them (the command line wins over the ini file) and checks every value, so a bad one is a
usage error naming the option. The plugin's modules read the result with
:func:`looplet_settings`; nothing here imports ``looplet``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from pytest_looplet.matrix import ModelChoice

__all__ = [
    "CASSETTE_INI_KEYS",
    "DEFAULT_THRESHOLD",
    "PROVIDERS",
    "RECORD_MODES",
    "LoopletSettings",
    "add_options",
    "cassette_failed_key",
    "check_threshold",
    "looplet_settings",
    "resolve",
    "settings_key",
]

# Two defaults of the library are spelled here too, because every pytest run reads them
# before anything may import looplet (a run without evals imports none of it):
# tests/test_plugin_options.py checks that they equal their definitions in the library.
RECORD_MODES = ("none", "once", "new_episodes", "all")
"""The cassette record modes, as vcrpy names them; ``none`` replays only. The library's
definition is :data:`looplet.cassettes.cassette.RECORD_MODES`."""

PROVIDERS = ("openai", "anthropic")
"""The providers ``looplet_llm`` can build a backend for."""

CASSETTE_INI_KEYS: dict[str, str] = {
    "looplet_cassette_match_on": "What a request must share with a recorded one to replay it "
    "(space-separated matcher names: method host path json_body query uri body headers...). "
    "Default: method host path json_body.",
    "looplet_cassette_filter_headers": "More header names kept off disk when recording, "
    "besides the API keys, auth headers and cookies always removed. Default: none.",
    "looplet_cassette_ignore_body_fields": "More JSON body fields (dotted for nested ones) "
    "ignored when matching, besides looplet's volatile fields. Default: none.",
}
"""The ini keys of the suite's cassette settings (read by :mod:`pytest_looplet.cassettes`),
with their help text."""

DEFAULT_THRESHOLD = 0.5
"""The score an eval must reach by default; the library's definition is
:data:`looplet.evals.result.DEFAULT_THRESHOLD`."""
_DEFAULT_EVAL_FILES = ["eval_*.py"]
_DEFAULT_EVAL_PREFIX = "eval_"


@dataclass(frozen=True, slots=True)
class LoopletSettings:
    """The plugin's options for this run, resolved once in ``pytest_configure``.

    Read it with :func:`looplet_settings`; each value comes from the command line when given
    there, else from the ini file, else the default.

    Attributes:
        evals: collect and run eval files.
        record_mode: the resolved cassette record mode (``none`` under ``CI=true`` unless
            ``--looplet-record-mode`` was given).
        record_mode_source: where ``record_mode`` came from, for the report header.
        model: the model evals should use, or ``None`` for each agent's own (and for a
            matrix).
        provider: ``openai`` or ``anthropic``, the backend ``looplet_llm`` builds.
        threshold: the score an eval must reach when its marker sets none.
        eval_files: glob patterns of eval files.
        eval_prefix: the name prefix of eval functions.
        repeat: runs per eval when its marker sets no ``repeat``.
        min_pass_rate: the share of a repeated eval's runs that must pass.
        pass_k: the ``k`` of the pass@k / pass^k shown, or ``None`` for each eval's runs.
        report: where to write the JSON report, or ``None``.
        html: where to write the HTML report, or ``None``.
        baseline: a saved JSON report to compare with, or ``None``.
        fail_on_regression: fail the run when the baseline comparison finds a regression.
        shard: ``(index, total)`` of the shard to run (1-based), or ``None`` for all.
        prices: JSON files of model prices added to the built-in table.
        runs: a saved run, or a folder of them, that ``looplet_run`` (and ``ctx``) is
            parametrized over (:mod:`pytest_looplet.runs`), or ``None``.
        models: every model of ``--looplet-model`` (one for a plain model name, two or more
            for a matrix: :mod:`pytest_looplet.matrix`).
    """

    evals: bool
    record_mode: str
    record_mode_source: str
    model: str | None
    provider: str
    threshold: float
    eval_files: tuple[str, ...]
    eval_prefix: str
    repeat: int = 1
    min_pass_rate: float = 1.0
    pass_k: int | None = None
    report: Path | None = None
    html: Path | None = None
    baseline: Path | None = None
    fail_on_regression: bool = False
    shard: tuple[int, int] | None = None
    prices: tuple[Path, ...] = ()
    runs: Path | None = None
    models: tuple[ModelChoice, ...] = ()

    @property
    def records_trajectories(self) -> bool:
        """Whether evals put their steps in ``looplet_trajectory`` (a report is written)."""
        return self.report is not None or self.html is not None


settings_key = pytest.StashKey[LoopletSettings]()
"""Where ``pytest_configure`` keeps the run's :class:`LoopletSettings` (on ``config.stash``)."""

cassette_failed_key = pytest.StashKey[bool]()
"""Set on an item whose test call already failed with a cassette error (reported once, by
the plugin's ``pytest_runtest_makereport``, not again by the cassette fixture)."""


def looplet_settings(config: pytest.Config) -> LoopletSettings:
    """The run's resolved options (``config.stash[settings_key]``)."""
    return config.stash[settings_key]


def check_threshold(value: object) -> float:
    """``value`` as a threshold: a number in [0, 1].

    Raises:
        ValueError: ``value`` is not a number in [0, 1].
    """
    try:
        number = float(value)  # type: ignore[arg-type]  # any str or number; checked below
    except (TypeError, ValueError):
        raise ValueError(f"a threshold is a number in [0, 1], not {value!r}") from None
    if isinstance(value, bool) or math.isnan(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"a threshold is a number in [0, 1], not {value!r}")
    return number


def add_options(parser: pytest.Parser) -> None:
    """Register the ``looplet`` option group, each option with its ini twin."""
    group = parser.getgroup("looplet", "looplet agent evals")
    flags: list[tuple[str, str, Literal["string", "bool"], object, str, dict[str, Any]]] = [
        ("--looplet-evals", "looplet_evals", "bool", False,
         "Collect and run eval files (looplet_eval_files). Default: off.",
         {"action": "store_true"}),
        ("--looplet-record-mode", "looplet_record_mode", "string", "none",
         f"Cassette record mode: {', '.join(RECORD_MODES)}. Default: none (replay only); "
         "with CI=true it stays none unless given on the command line.", {"metavar": "MODE"}),
        ("--looplet-model", "looplet_model", "string", "",
         "Model evals run against, or provider:model; a comma-separated list (the ini: "
         "commas or lines) runs each eval that uses the model once per model, and compares "
         "them. Default: each agent's own.", {"metavar": "NAMES"}),
        ("--looplet-provider", "looplet_provider", "string", "openai",
         f"Provider looplet_llm talks to: {', '.join(PROVIDERS)}. Default: openai.",
         {"metavar": "NAME"}),
        ("--looplet-threshold", "looplet_threshold", "string", f"{DEFAULT_THRESHOLD:g}",
         "Score in [0, 1] an eval must reach unless its looplet marker sets one. Default: "
         f"{DEFAULT_THRESHOLD:g}.",
         {"metavar": "FLOAT"}),
        ("--looplet-repeat", "looplet_repeat", "string", "1",
         "Runs of each eval whose looplet marker sets no repeat=, one item per run. "
         "Default: 1.", {"metavar": "K"}),
        ("--looplet-min-pass-rate", "looplet_min_pass_rate", "string", "1.0",
         "Share in [0, 1] of a repeated eval's runs that must pass for the eval (and the "
         "run's exit status) to pass. Default: 1.0.", {"metavar": "FLOAT"}),
        ("--looplet-pass-k", "looplet_pass_k", "string", "",
         "The k of the pass@k and pass^k shown for repeated evals. Default: each eval's "
         "number of runs.", {"metavar": "K"}),
        ("--looplet-report", "looplet_report", "string", "",
         "Write the evals' JSON report (docs/reports.md) to PATH. Default: none.",
         {"metavar": "PATH"}),
        ("--looplet-html", "looplet_html", "string", "",
         "Write a self-contained HTML report of the evals to PATH. Default: none.",
         {"metavar": "PATH"}),
        ("--looplet-baseline", "looplet_baseline", "string", "",
         "Compare this run with a saved JSON report. Default: none.", {"metavar": "PATH"}),
        ("--looplet-fail-on-regression", "looplet_fail_on_regression", "bool", False,
         "Fail the run when an eval's pass rate dropped from --looplet-baseline with "
         "Fisher's exact p < 0.05. Default: off.", {"action": "store_true"}),
        ("--looplet-shard", "looplet_shard", "string", "",
         "Run only shard I of N of the eval items: N shards of equal size (within one "
         "item), the same split on every machine. Default: all.", {"metavar": "I/N"}),
        ("--looplet-runs", "looplet_runs", "string", "",
         "Grade saved runs: each run directory under DIR (trajectory.json or steps/*.json) "
         "is one item of every eval that takes looplet_run or ctx. Needs --looplet-evals. "
         "Default: none.", {"metavar": "DIR"}),
    ]  # fmt: skip
    for option, dest, ini_type, default, text, kw in flags:
        parser.addini(dest, help=f"Default for {option}. {text}", type=ini_type, default=default)
        group.addoption(option, dest=dest, default=None, help=text, **kw)
    parser.addini(
        "looplet_eval_files",
        help="Glob patterns (space-separated) of eval files. Default: eval_*.py.",
        type="args",
        default=_DEFAULT_EVAL_FILES,
    )
    parser.addini(
        "looplet_eval_prefix",
        help="Name prefix of eval functions in eval files. Default: eval_.",
        default=_DEFAULT_EVAL_PREFIX,
    )
    parser.addini(
        "looplet_prices",
        help="JSON files of model prices ($ per 1M input/output tokens) that extend or "
        "override the built-in table. Default: none.",
        type="paths",
        default=[],
    )
    for name, text in CASSETTE_INI_KEYS.items():
        parser.addini(name, help=text, type="args", default=[])


def resolve(config: pytest.Config) -> LoopletSettings:
    """The run's :class:`LoopletSettings`, from the command line, else the ini file, else the
    defaults.

    Raises:
        pytest.UsageError: a value that is not valid, naming the option and what it takes.
    """
    evals = config.getoption("looplet_evals") or config.getini("looplet_evals")
    mode, source = _record_mode(config)
    provider = _option_or_ini(config, "looplet_provider") or "openai"
    if provider not in PROVIDERS:
        raise pytest.UsageError(
            f"looplet: unknown provider {provider!r}; valid: {', '.join(PROVIDERS)}"
        )
    prefix = str(config.getini("looplet_eval_prefix")).strip()
    if not prefix:
        raise pytest.UsageError("looplet: looplet_eval_prefix must not be empty")
    pass_k = _option_or_ini(config, "looplet_pass_k")
    models = _models(config, provider)
    if len(models) == 1:  # one model: today's items and cassettes, on its provider
        provider = models[0].provider
    return LoopletSettings(
        evals=bool(evals),
        record_mode=mode,
        record_mode_source=source,
        model=models[0].model if len(models) == 1 else None,
        provider=provider,
        threshold=_rate(config, "looplet_threshold"),
        eval_files=tuple(config.getini("looplet_eval_files")),
        eval_prefix=prefix,
        repeat=_positive_int(config, "looplet_repeat", _option_or_ini(config, "looplet_repeat")),
        min_pass_rate=_rate(config, "looplet_min_pass_rate"),
        pass_k=_positive_int(config, "looplet_pass_k", pass_k) if pass_k else None,
        report=_path(config, "looplet_report"),
        html=_path(config, "looplet_html"),
        baseline=_path(config, "looplet_baseline"),
        fail_on_regression=bool(
            config.getoption("looplet_fail_on_regression")
            or config.getini("looplet_fail_on_regression")
        ),
        shard=_shard(config),
        prices=tuple(config.getini("looplet_prices")),
        runs=_path(config, "looplet_runs"),
        models=models,
    )


def _models(config: pytest.Config, provider: str) -> tuple[ModelChoice, ...]:
    raw = _option_or_ini(config, "looplet_model")
    if not raw:
        return ()
    from pytest_looplet.matrix import parse_models  # only a run that names models loads it

    try:
        return parse_models(raw, provider, PROVIDERS, _where("looplet_model"))
    except ValueError as exc:
        raise pytest.UsageError(f"looplet: {exc}") from None


def _where(name: str) -> str:
    return f"--{name.replace('_', '-')} / {name}"


def _positive_int(config: pytest.Config, name: str, raw: str) -> int:
    if not re.fullmatch(r"\+?\d+", raw) or int(raw) < 1:
        raise pytest.UsageError(f"looplet: {_where(name)} must be an integer >= 1, not {raw!r}")
    return int(raw)


def _rate(config: pytest.Config, name: str) -> float:
    raw = _option_or_ini(config, name)
    try:
        return check_threshold(raw)
    except ValueError:
        raise pytest.UsageError(
            f"looplet: {_where(name)} must be a number in [0, 1], not {raw!r}"
        ) from None


def _shard(config: pytest.Config) -> tuple[int, int] | None:
    raw = _option_or_ini(config, "looplet_shard")
    if not raw:
        return None
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", raw)
    if match is None or not 1 <= int(match[1]) <= int(match[2]):
        raise pytest.UsageError(
            f"looplet: {_where('looplet_shard')} must be I/N with 1 <= I <= N (e.g. 2/4), "
            f"not {raw!r}"
        )
    return int(match[1]), int(match[2])


def _path(config: pytest.Config, name: str) -> Path | None:
    # Like pytest's own paths: the command line's relative to the current folder, the ini
    # file's relative to the rootdir.
    cli = config.getoption(name)
    raw = str(cli if cli is not None else config.getini(name)).strip()
    if not raw:
        return None
    base = config.invocation_params.dir if cli is not None else config.rootpath
    return base / Path(raw).expanduser()


def _record_mode(config: pytest.Config) -> tuple[str, str]:
    cli = config.getoption("looplet_record_mode")
    mode = str(cli if cli is not None else config.getini("looplet_record_mode")).strip()
    if mode not in RECORD_MODES:
        where = "--looplet-record-mode" if cli is not None else "ini looplet_record_mode"
        raise pytest.UsageError(
            f"looplet: unknown record mode {mode!r} ({where}); valid modes: "
            f"{', '.join(RECORD_MODES)}"
        )
    if cli is not None:
        return mode, "--looplet-record-mode"
    if mode != "none" and _on_ci():
        # A CI run must never reach a real model: only an explicit flag may record there.
        return "none", "CI"
    return mode, "ini" if mode != "none" else "default"


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _option_or_ini(config: pytest.Config, name: str) -> str:
    value = config.getoption(name)
    return str(value if value is not None else config.getini(name)).strip()
