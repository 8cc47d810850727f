"""The plugin's registration: options and ini keys, the record mode, the marker, lazy imports."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

pytest_plugins = ["pytester"]

Run = Callable[..., pytest.RunResult]

# Prints the resolved settings from the stash, as the cassette fixtures will read them.
SETTINGS_CONFTEST = """
from pytest_looplet.settings import looplet_settings

def pytest_terminal_summary(terminalreporter, config):
    s = looplet_settings(config)
    terminalreporter.write_line(
        f"SETTINGS mode={s.record_mode} source={s.record_mode_source} model={s.model} "
        f"threshold={s.threshold} evals={s.evals}"
    )
"""


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run pytest in-process with the plugin passed by ``-p`` and nothing autoloaded."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "pytest_looplet.plugin", *args)

    return run


def test_help_lists_every_option_and_ini_key_with_its_default(run: Run) -> None:
    # pytest wraps help text at the terminal width: compare with whitespace collapsed.
    text = " ".join(run("--help").stdout.str().split())
    assert "looplet agent evals: --looplet-evals Collect and run eval files" in text
    for expected in (
        "--looplet-evals Collect and run eval files (looplet_eval_files). Default: off.",
        "--looplet-record-mode=MODE Cassette record mode: none, once, new_episodes, all. "
        "Default: none",
        "--looplet-model=NAMES Model evals run against, or provider:model;",
        "--looplet-threshold=FLOAT Score in [0, 1] an eval must reach",
        "looplet_evals (bool): Default for --looplet-evals.",
        "looplet_record_mode (string): Default for --looplet-record-mode.",
        "looplet_model (string): Default for --looplet-model.",
        "looplet_threshold (string): Default for --looplet-threshold.",
        "looplet_eval_files (args): Glob patterns (space-separated) of eval files. "
        "Default: eval_*.py.",
        "looplet_eval_prefix (string): Name prefix of eval functions in eval files. "
        "Default: eval_.",
    ):
        assert expected in text, expected
    assert "marker sets one. Default: 0.5." in text


def test_unknown_record_mode_on_the_command_line_is_a_usage_error(run: Run) -> None:
    result = run("--looplet-record-mode", "sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*unknown record mode 'sometimes' (--looplet-record-mode); "
            "valid modes: none, once, new_episodes, all*"
        ]
    )


def test_unknown_record_mode_in_the_ini_file_is_a_usage_error(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makeini("[pytest]\nlooplet_record_mode = always\n")
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown record mode 'always' (ini looplet_record_mode); valid modes: none, once*"]
    )


def test_threshold_outside_zero_to_one_is_a_usage_error(run: Run) -> None:
    result = run("--looplet-threshold", "1.5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*must be a number in [[]0, 1[]], not '1.5'*"])


def test_settings_come_from_the_command_line_first_then_the_ini_file(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makeconftest(SETTINGS_CONFTEST)
    pytester.makeini(
        "[pytest]\nlooplet_record_mode = once\nlooplet_model = small\nlooplet_threshold = 0.7\n"
    )
    run().stdout.fnmatch_lines(
        ["SETTINGS mode=once source=ini model=small threshold=0.7 evals=False"]
    )
    run(
        "--looplet-record-mode=all", "--looplet-model=big", "--looplet-threshold=0.2"
    ).stdout.fnmatch_lines(
        ["SETTINGS mode=all source=--looplet-record-mode model=big threshold=0.2 evals=False"]
    )


def test_defaults_replay_only_with_threshold_one_half(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(SETTINGS_CONFTEST)
    run().stdout.fnmatch_lines(
        ["SETTINGS mode=none source=default model=None threshold=0.5 evals=False"]
    )


def test_ci_keeps_the_record_mode_none_unless_given_on_the_command_line(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(SETTINGS_CONFTEST)
    pytester.makeini("[pytest]\nlooplet_record_mode = new_episodes\n")
    monkeypatch.setenv("CI", "true")
    run().stdout.fnmatch_lines(["SETTINGS mode=none source=CI *"])
    run("--looplet-record-mode", "once").stdout.fnmatch_lines(
        ["SETTINGS mode=once source=--looplet-record-mode *"]
    )


def test_eval_plugin_is_registered_only_with_evals_on(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "def pytest_terminal_summary(terminalreporter, config):\n"
        "    on = config.pluginmanager.get_plugin('looplet-evals') is not None\n"
        "    terminalreporter.write_line(f'EVAL PLUGIN {on}')\n"
    )
    run().stdout.fnmatch_lines(["EVAL PLUGIN False"])
    result = run("--looplet-evals")
    result.stdout.fnmatch_lines(
        ["looplet: evals eval_*.py (eval_*), threshold 0.5, *", "EVAL PLUGIN True"]
    )


def test_looplet_marker_passes_strict_markers(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.looplet(threshold=0.8, max_steps=5, max_tokens=1000)
        def test_marked():
            pass
        """,
        test_other="""
        import pytest

        @pytest.mark.unregistered_marker
        def test_other():
            pass
        """,
    )
    run("--strict-markers", "test_marked.py").assert_outcomes(passed=1)
    # The control: an undeclared marker is rejected under the same flag.
    run("--strict-markers", "test_other.py").stdout.fnmatch_lines(
        ["*'unregistered_marker' not found in `markers` configuration option*"]
    )


# Runs in a fresh interpreter, the plugin loaded through its pytest11 entry point.
IMPORTS_CONFTEST = """
import sys

def pytest_terminal_summary(terminalreporter, config):
    names = ("vcr", "openai", "looplet.cassettes", "looplet")
    loaded = sorted(name for name in names if name in sys.modules)
    terminalreporter.write_line(f"LOADED {loaded}")
    terminalreporter.write_line(f"ENTRY POINT {config.pluginmanager.has_plugin('looplet')}")
"""


def test_plain_run_imports_nothing_heavy_and_not_even_looplet(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makeconftest(IMPORTS_CONFTEST)
    pytester.makepyfile(test_plain="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["LOADED []", "ENTRY POINT True"])


def test_eval_run_imports_no_vcr_openai_or_cassettes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makeconftest(IMPORTS_CONFTEST)
    pytester.makepyfile(eval_one="def eval_one():\n    return 0.9\n")
    result = pytester.runpytest_subprocess("--looplet-evals")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["LOADED ['looplet']", "ENTRY POINT True"])


# Writes the looplet modules a run loaded, once it is over (after every plugin's last hook).
MODULES_CONFTEST = """
import json, sys

def pytest_unconfigure(config):
    names = sorted(m for m in sys.modules if m.split(".")[0] in ("looplet", "pytest_looplet"))
    (config.rootpath / "modules.json").write_text(json.dumps(names))
"""


def _modules_of_a_run(pytester: pytest.Pytester, *args: str) -> set[str]:
    """The looplet modules a fresh ``pytest`` run loads, the plugin on its entry point, in a
    folder holding a test file and an eval file."""
    pytester.makeconftest(MODULES_CONFTEST)
    pytester.makepyfile(
        test_plain="def test_one():\n    pass\n", eval_plain="def eval_one():\n    return 1.0\n"
    )
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    return set(json.loads((pytester.path / "modules.json").read_text()))


def test_a_run_without_evals_loads_only_the_plugins_own_core(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project that never runs an eval pays for the options, fixtures and redaction only:
    not the eval collection, the summary, cassette handling or xdist crash recovery."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    assert _modules_of_a_run(pytester) == {
        "pytest_looplet",
        "pytest_looplet.fixtures",
        "pytest_looplet.plugin",
        "pytest_looplet.redaction",
        "pytest_looplet.settings",
    }


def test_evals_on_with_nothing_to_run_import_no_looplet(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``--looplet-evals`` and every eval deselected, the end-of-run summary has nothing
    to build, so looplet itself (the report, the redactor, the loop) is never imported."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    loaded = _modules_of_a_run(pytester, "--looplet-evals", "-k", "not looplet_eval")
    assert "pytest_looplet.summary" in loaded  # the eval plugin was on
    assert not {m for m in loaded if m.split(".")[0] == "looplet"}


def test_the_defaults_a_run_reads_before_looplet_loads_are_the_librarys(
    run: Run, pytester: pytest.Pytester
) -> None:
    """The threshold and the record modes are defined in the library; the settings spell them
    too (every run reads them, and a run without evals imports no looplet): they must agree,
    down to what a run resolves when nothing is given."""
    from looplet.cassettes.cassette import RECORD_MODES
    from looplet.evals.result import DEFAULT_THRESHOLD
    from pytest_looplet import settings

    assert settings.RECORD_MODES == RECORD_MODES
    assert settings.DEFAULT_THRESHOLD == DEFAULT_THRESHOLD
    pytester.makeconftest(SETTINGS_CONFTEST)
    run().stdout.fnmatch_lines([f"SETTINGS mode=none * threshold={DEFAULT_THRESHOLD} *"])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_looplet_model_defaults_to_the_backends_default_model(
    run: Run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    """One default model per provider, the backend's: ``looplet_model`` reads it there."""
    import importlib

    for name in ("OPENAI_MODEL", "ANTHROPIC_MODEL"):
        monkeypatch.delenv(name, raising=False)
    backend = importlib.import_module(f"looplet.backends.{provider}")
    pytester.makepyfile(
        test_model="def test_model(looplet_model):\n    print('MODEL', looplet_model)\n"
    )
    result = run("-s", f"--looplet-provider={provider}", "test_model.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*MODEL {backend.DEFAULT_MODEL}"])
