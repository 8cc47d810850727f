"""The coding agent's file tools stay in the workspace against every way out: symlinks to a
file or a folder outside (read, write, edit, grep, glob), link chains, ``..``, absolute and
``/proc/self/root`` paths, NUL bytes, over-long names and symlink loops. Each attack is a
tool call made the way the loop makes it; links that stay inside still work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from looplet import ToolCall, ToolResult
from looplet.examples import coding_agent

SECRET = "TOP-SECRET-OUTSIDE"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with one ordinary file, and a folder outside it holding a secret."""
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    workspace.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text(f"{SECRET}\n")
    (workspace / "notes.txt").write_text("SECRET-FREE notes\n")
    return workspace, outside


def run(workspace: Path, tool: str, **args: object) -> ToolResult:
    return coding_agent.build_tools(workspace).dispatch(ToolCall(tool, dict(args)))


def assert_refused(result: ToolResult, path: str) -> None:
    assert result.error_kind == "permission_denied", result
    assert f"{path!r} is outside the workspace" in (result.error or "")
    assert result.error_detail is not None and result.error_detail.context["path"] == path


# -- a link to a file outside -------------------------------------------------------------------


def test_grep_skips_a_link_to_a_file_outside(layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    (workspace / "link").symlink_to(outside / "secret.txt")
    everywhere = run(workspace, "grep", pattern="SECRET")
    assert everywhere.ok and SECRET not in str(everywhere.data)
    assert everywhere.data == "notes.txt:1: SECRET-FREE notes"
    assert_refused(run(workspace, "grep", pattern="SECRET", path="link"), "link")


def test_glob_and_read_leave_out_a_link_to_a_file_outside(layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    (workspace / "link").symlink_to(outside / "secret.txt")
    assert run(workspace, "glob", pattern="**/*").data == ["notes.txt"]
    assert run(workspace, "glob", pattern="link").data == []
    assert_refused(run(workspace, "read", path="link"), "link")


def test_a_chain_of_links_ending_outside_is_followed_to_its_end(
    layout: tuple[Path, Path],
) -> None:
    workspace, outside = layout
    (workspace / "last").symlink_to(outside / "secret.txt")
    (workspace / "middle").symlink_to("last")
    (workspace / "first").symlink_to("middle")
    assert SECRET not in str(run(workspace, "grep", pattern="SECRET").data)
    assert_refused(run(workspace, "read", path="first"), "first")
    assert_refused(run(workspace, "write", path="first", content="x"), "first")
    assert (outside / "secret.txt").read_text() == f"{SECRET}\n"


# -- a link to a folder outside -----------------------------------------------------------------


def test_a_link_to_a_folder_outside_is_not_entered(layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    (workspace / "out").symlink_to(outside)
    (workspace / "sub").mkdir()
    (workspace / "sub" / "deep").symlink_to(outside)
    assert SECRET not in str(run(workspace, "grep", pattern="SECRET").data)
    assert_refused(run(workspace, "grep", pattern="SECRET", path="out"), "out")
    assert_refused(
        run(workspace, "grep", pattern="x", path="sub/deep/secret.txt"), "sub/deep/secret.txt"
    )
    for pattern in ("**/*", "out/*", "out/**/*", "sub/deep/*", "**/secret.txt"):
        assert run(workspace, "glob", pattern=pattern).data in ([], ["notes.txt"]), pattern
    assert_refused(run(workspace, "read", path="out/secret.txt"), "out/secret.txt")
    assert_refused(run(workspace, "write", path="out/new.txt", content="x"), "out/new.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


# -- writing through a link pointing out ----------------------------------------------------------


def test_write_and_edit_through_a_link_pointing_out_are_refused(
    layout: tuple[Path, Path],
) -> None:
    workspace, outside = layout
    (workspace / "link").symlink_to(outside / "secret.txt")
    (workspace / "dangling").symlink_to(outside / "not-yet.txt")
    assert_refused(run(workspace, "write", path="link", content="x"), "link")
    assert_refused(run(workspace, "edit", path="link", old=SECRET, new="x"), "link")
    assert_refused(run(workspace, "write", path="dangling", content="x"), "dangling")
    assert (outside / "secret.txt").read_text() == f"{SECRET}\n"
    assert not (outside / "not-yet.txt").exists()


# -- paths that name a place outside ------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["../outside/secret.txt", "notes.txt/../../outside/secret.txt", "sub/../../outside"]
)
def test_parent_paths_are_refused_by_every_file_tool(path: str, layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    assert_refused(run(workspace, "read", path=path), path)
    assert_refused(run(workspace, "write", path=path, content="x"), path)
    assert_refused(run(workspace, "edit", path=path, old=SECRET, new="x"), path)
    assert_refused(run(workspace, "grep", pattern="SECRET", path=path), path)
    assert (outside / "secret.txt").read_text() == f"{SECRET}\n"


def test_absolute_paths_outside_are_refused_and_inside_allowed(
    layout: tuple[Path, Path],
) -> None:
    workspace, outside = layout
    secret = str(outside / "secret.txt")
    assert_refused(run(workspace, "read", path=secret), secret)
    assert_refused(run(workspace, "grep", pattern="SECRET", path=secret), secret)
    assert_refused(run(workspace, "write", path=secret, content="x"), secret)
    assert run(workspace, "read", path=str(workspace / "notes.txt")).ok


@pytest.mark.skipif(not Path("/proc/self/root").is_symlink(), reason="needs Linux's /proc")
def test_proc_self_root_is_resolved_before_the_check(layout: tuple[Path, Path]) -> None:
    workspace, outside = layout
    secret = f"/proc/self/root{outside}/secret.txt"
    assert_refused(run(workspace, "read", path=secret), secret)
    assert_refused(run(workspace, "grep", pattern="SECRET", path=secret), secret)
    assert_refused(
        run(workspace, "read", path="/proc/self/root/etc/hostname"), "/proc/self/root/etc/hostname"
    )
    inside = run(workspace, "read", path=f"/proc/self/root{workspace}/notes.txt")
    assert inside.data == "SECRET-FREE notes\n"


# -- malformed names ----------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["read", "write", "edit", "grep"])
def test_a_nul_byte_in_a_path_is_refused_by_name(tool: str, layout: tuple[Path, Path]) -> None:
    workspace, _ = layout
    args = {
        "read": {},
        "write": {"content": "x"},
        "edit": {"old": "a", "new": "b"},
        "grep": {"pattern": "x"},
    }[tool]
    result = run(workspace, tool, path="notes.txt\0.py", **args)
    assert result.error_kind == "validation"
    assert "'notes.txt\\x00.py' contains a NUL byte" in (result.error or "")
    assert result.error_detail is not None
    assert result.error_detail.context["path"] == "notes.txt\0.py"


@pytest.mark.parametrize("name", ["a" * 5000, "a" * 300, "/".join(["d"] * 2100)])
@pytest.mark.parametrize("tool", ["read", "write", "grep"])
def test_an_over_long_path_is_refused_with_the_limit(
    tool: str, name: str, layout: tuple[Path, Path]
) -> None:
    workspace, _ = layout
    args = {"read": {}, "write": {"content": "x"}, "grep": {"pattern": "x"}}[tool]
    result = run(workspace, tool, path=name, **args)
    assert result.error_kind == "validation", result
    assert "is too long" in (result.error or "")
    assert len(result.error or "") < 400  # the message quotes the path's start, not all of it
    assert sorted(p.name for p in workspace.iterdir()) == ["notes.txt"]


def test_a_symlink_loop_is_refused_and_skipped_while_walking(
    layout: tuple[Path, Path],
) -> None:
    workspace, _ = layout
    (workspace / "loop").symlink_to("loop")
    result = run(workspace, "read", path="loop")
    assert result.error_kind == "validation" and "'loop' is a symlink loop" in str(result.error)
    assert run(workspace, "grep", pattern="notes").data == "notes.txt:1: SECRET-FREE notes"
    assert run(workspace, "glob", pattern="*").data == ["notes.txt"]


# -- links that stay inside ---------------------------------------------------------------------


def test_links_inside_the_workspace_still_work(layout: tuple[Path, Path]) -> None:
    workspace, _ = layout
    (workspace / "docs").mkdir()
    (workspace / "docs" / "alias.txt").symlink_to("../notes.txt")
    (workspace / "alias2").symlink_to("docs/alias.txt")  # a chain that stays inside
    assert run(workspace, "read", path="docs/alias.txt").data == "SECRET-FREE notes\n"
    assert run(workspace, "read", path="alias2").data == "SECRET-FREE notes\n"
    assert run(workspace, "glob", pattern="**/*.txt").data == ["docs/alias.txt", "notes.txt"]
    found = str(run(workspace, "grep", pattern="notes").data).splitlines()
    assert found == [
        "alias2:1: SECRET-FREE notes",
        "notes.txt:1: SECRET-FREE notes",
        "docs/alias.txt:1: SECRET-FREE notes",  # a folder's files come before its subfolders'
    ]
    edited = run(workspace, "edit", path="alias2", old="notes", new="memo")
    assert edited.ok and (workspace / "notes.txt").read_text() == "SECRET-FREE memo\n"
    assert (workspace / "alias2").is_symlink()
    assert run(workspace, "write", path="docs/alias.txt", content="new\n").ok
    assert (workspace / "notes.txt").read_text() == "new\n"


def test_glob_matches_like_before(tmp_path: Path) -> None:
    for name in ("a.py", "pkg/b.py", "pkg/sub/c.py", "pkg/d.txt", ".hidden.py", ".git/x.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")

    def glob(pattern: str) -> object:
        return run(tmp_path, "glob", pattern=pattern).data

    assert glob("*.py") == [".hidden.py", "a.py"]
    assert glob("**/*.py") == [".hidden.py", "a.py", "pkg/b.py", "pkg/sub/c.py"]
    assert glob("pkg/*") == ["pkg/b.py", "pkg/d.txt"]
    assert glob("pkg/**/*.py") == ["pkg/b.py", "pkg/sub/c.py"]
    assert glob("p?g/s*/[a-c].py") == ["pkg/sub/c.py"]
    assert glob("**") == []  # ** alone matches folders only, as pathlib's glob does
    assert glob("pkg") == []


if sys.platform == "win32":  # pragma: no cover - symlinks need privileges there
    pytestmark = pytest.mark.skip(reason="symlinks")
