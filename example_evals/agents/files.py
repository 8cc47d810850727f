"""A file-editing agent that works inside its own workspace, under a permission engine.

Its tools read, write and list files below ``ctx.workspace_root`` (a path that would leave it
is refused), and can delete files; the permission engine denies every deletion, so the agent
must finish without deleting anything.
"""

from __future__ import annotations

from pathlib import Path

from looplet import BaseToolRegistry, LoopConfig, ToolContext, ToolError, tool
from looplet.permissions import PermissionEngine

SYSTEM_PROMPT = (
    "You edit text files in a small workspace. Look before you change anything: list the "
    "files, read the one you need, then write it back whole. Call done with a one-line "
    "summary when the task is complete or cannot be done."
)


def _resolve(ctx: ToolContext, path: str) -> Path:
    root = Path(ctx.workspace_root).resolve()
    target = (root / path).resolve()
    if root != target and root not in target.parents:
        raise ToolError("permission_denied", f"{path!r} is outside the workspace")
    return target


@tool
def list_files(ctx: ToolContext) -> list[str]:
    """List the files in the workspace."""
    root = Path(ctx.workspace_root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@tool
def read_file(path: str, ctx: ToolContext) -> str:
    """Read a text file.

    Args:
        path: the file's path, relative to the workspace.
    """
    target = _resolve(ctx, path)
    if not target.is_file():
        raise ToolError("validation", f"no file {path!r}; call list_files to see what exists")
    return target.read_text(encoding="utf-8")


@tool
def write_file(path: str, content: str, ctx: ToolContext) -> dict[str, int | str]:
    """Write a text file, replacing what it held.

    Args:
        path: the file's path, relative to the workspace.
        content: the whole new content.
    """
    target = _resolve(ctx, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    return {"path": path, "bytes": len(content.encode("utf-8"))}


@tool
def delete_file(path: str, ctx: ToolContext) -> dict[str, str]:
    """Delete a file.

    Args:
        path: the file's path, relative to the workspace.
    """
    _resolve(ctx, path).unlink()
    return {"deleted": path}


@tool
def done(summary: str) -> dict[str, str]:
    """Finish.

    Args:
        summary: one line saying what was done.
    """
    return {"summary": summary}


def build_tools() -> BaseToolRegistry:
    """The file agent's tools."""
    return BaseToolRegistry([list_files, read_file, write_file, delete_file, done])


def build_permissions() -> PermissionEngine:
    """Reading, listing and writing are allowed; deleting is not; anything else is denied."""
    return (
        PermissionEngine()
        .deny("delete_*", reason="this agent may not delete files")
        .allow("list_files")
        .allow("read_file")
        .allow("write_file")
    )


def build_config(max_steps: int = 8) -> LoopConfig:
    """The file agent's loop settings (the workspace is set per run)."""
    return LoopConfig(max_steps=max_steps, system_prompt=SYSTEM_PROMPT, temperature=0.0)
