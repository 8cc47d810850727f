"""Skills: a named bundle of tools and instructions that an agent can be given, or pick up.

A :class:`Skill` pairs tools with the instructions for using them (and optional memory text).
Give it to a run up front (:meth:`Skill.apply` registers the tools, adds a titled section
to the system prompt and the memory as one of the run's memory sources, see
:mod:`looplet.memory`), or offer a catalog and let the model activate what it needs
(:func:`skill_activation_tool`: the skill's tools are registered, and its instructions and
memory returned, when the model asks for it). Skills load from the folder layout agents already
use: ``<name>/SKILL.md`` with a small front-matter header, plus an optional ``tools.py``
(:meth:`Skill.from_folder`, :func:`load_skills`). The front matter is read here, with the
standard library only; the loop itself knows nothing of skills.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from looplet.config import DEFAULT_SYSTEM_PROMPT, LoopConfig
from looplet.errors import ConfigurationError
from looplet.tools import BaseToolRegistry
from looplet.toolspec import ToolSpec, tool

if TYPE_CHECKING:
    from looplet.memory import MemorySource

__all__ = [
    "Skill",
    "SkillLoadError",
    "apply_skills",
    "load_skills",
    "parse_front_matter",
    "skill_activation_tool",
]

#: The memory a skill may carry: fixed text, or a function called each time it is read.
Memory = str | Callable[[], str]


class SkillLoadError(ConfigurationError):
    """A skill folder cannot be loaded: a malformed ``SKILL.md`` or a failing ``tools.py``.

    Attributes:
        path: the file at fault.
        line: the 1-based line of ``path`` at fault, when there is one.
    """

    def __init__(self, path: Path, problem: str, *, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line


@dataclass(frozen=True, slots=True)
class Skill:
    """Tools plus the instructions (and memory) that tell the model how to use them.

    Example::

        review = Skill("code_review", "Review a diff for bugs.", [read_file, comment],
                       "Read every changed file before commenting.")
        config, tools = review.apply(LoopConfig(), tools)

    Args:
        name: what the skill is called (its section title and catalog name).
        description: one line on when to use it (shown in catalogs).
        tools: its tools: ``ToolSpec`` objects or ``@tool``-able functions.
        instructions: how to use it; becomes a section of the system prompt.
        memory: text the model should know while using it, or a function returning it.
            Given to a run with :meth:`apply`, it is a memory source
            (:meth:`memory_source`): the function is called before every model call and
            what it returns now is sent, after the system prompt.
        path: the folder it was loaded from, if any.
    """

    name: str
    description: str = ""
    tools: Sequence[ToolSpec | Callable[..., Any]] = ()
    instructions: str = ""
    memory: Memory | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(f"a skill needs a non-empty name, got {self.name!r}")
        specs = tuple(t if isinstance(t, ToolSpec) else tool(t) for t in self.tools)
        object.__setattr__(self, "tools", specs)

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        """The skill's tools, each as a :class:`~looplet.toolspec.ToolSpec`."""
        return cast(tuple[ToolSpec, ...], self.tools)

    @property
    def tool_names(self) -> list[str]:
        """The names of the skill's tools, in order."""
        return [spec.name for spec in self.specs]

    def register(self, registry: BaseToolRegistry) -> list[ToolSpec]:
        """Register the skill's tools in ``registry``; a name already there is skipped.

        Returns:
            The specs that were added (skipped ones are not listed).

        Raises:
            ConfigurationError: a different tool of the same name is already registered.
        """
        added = []
        for spec in self.specs:
            held = registry.get(spec.name)
            if held is spec:
                continue
            if held is not None:
                raise ConfigurationError(
                    f"skill {self.name!r}: a different tool named {spec.name!r} is already "
                    "registered; rename one of them."
                )
            added.append(registry.register(spec))
        return added

    def prompt_section(self, *, memory: bool = True) -> str:
        """The skill as a titled section of a system prompt: instructions, then memory.

        Args:
            memory: include the memory, rendered now (``False``: the instructions only, as
                :func:`apply_skills` writes them, the memory going to a memory source).
        """
        parts = [f"## Skill: {self.name}"]
        if self.description:
            parts.append(self.description)
        if self.instructions.strip():
            parts.append(self.instructions.strip())
        if self.path is not None:
            parts.append(f"This skill's files are in {self.path}.")
        text = self.memory_text() if memory else ""
        if text:
            parts.append(f"### {self.memory_title}\n{text}")
        return "\n\n".join(parts)

    @property
    def memory_title(self) -> str:
        """The heading of the skill's memory: ``"Memory (<name>)"``."""
        return f"Memory ({self.name})"

    def memory_text(self) -> str:
        """The memory, rendered now (``""`` when there is none)."""
        memory = self.memory() if callable(self.memory) else self.memory
        return (memory or "").strip()

    def memory_source(self) -> MemorySource | None:
        """The skill's memory as a memory source (``None`` when it has none).

        Its text is :meth:`memory_text`, read before every model call of the run it is
        given to (``LoopConfig.memory_sources``), under the heading :attr:`memory_title`.
        """
        if self.memory is None:
            return None
        from looplet.memory import CallableMemorySource

        return CallableMemorySource(self.memory_text, title=self.memory_title)

    def system_prompt(self, base: str | None = None, *, memory: bool = True) -> str:
        """``base`` (the default system prompt if ``None``) followed by this skill's section.

        Args:
            base: the prompt to extend.
            memory: include the memory, rendered now (see :meth:`prompt_section`).
        """
        head = DEFAULT_SYSTEM_PROMPT if base is None else base
        return f"{head.rstrip()}\n\n{self.prompt_section(memory=memory)}"

    def apply(
        self, config: LoopConfig | None = None, registry: BaseToolRegistry | None = None
    ) -> tuple[LoopConfig, BaseToolRegistry]:
        """Give this skill to a run: the tools registered, the section added to the prompt,
        the memory added to the memory sources (see :func:`apply_skills`).

        Returns:
            A new config (``config`` is not changed) and ``registry`` (a new one if ``None``).
        """
        return apply_skills([self], config, registry)

    def as_catalog_entry(self) -> dict[str, Any]:
        """``{"name", "description", "tools"}``: what a catalog of skills shows of this one."""
        return {"name": self.name, "description": self.description, "tools": self.tool_names}

    @classmethod
    def from_folder(cls, path: str | Path, *, memory: Memory | None = None) -> Skill:
        """Load a skill from a folder holding ``SKILL.md`` and, optionally, ``tools.py``.

        ``SKILL.md`` opens with a front-matter header naming the skill; its body is the
        instructions::

            ---
            name: code_review
            description: Review a diff for bugs.
            ---
            Read every changed file before commenting.

        ``tools.py`` may list its tools in ``TOOLS``; otherwise every ``@tool`` function
        defined in it (not imported into it) is taken.

        Raises:
            SkillLoadError: no ``SKILL.md``, a malformed header (the message names the file
                and line), or a ``tools.py`` that fails to import or offers no tools.
        """
        folder = Path(path)
        skill_md = folder / "SKILL.md"
        if not skill_md.is_file():
            raise SkillLoadError(skill_md, "no SKILL.md: a skill folder needs one")
        text = skill_md.read_text(encoding="utf-8-sig")
        header, body = parse_front_matter(text, skill_md)
        for key in ("name", "description"):
            if not header.get(key, "").strip():
                raise SkillLoadError(
                    skill_md, f"the front matter has no {key!r}: add '{key}: ...'", line=1
                )
        tools_py = folder / "tools.py"
        tools = _load_tools(tools_py) if tools_py.is_file() else []
        return cls(header["name"], header["description"], tools, body.strip(), memory, folder)


def apply_skills(
    skills: Iterable[Skill],
    config: LoopConfig | None = None,
    registry: BaseToolRegistry | None = None,
) -> tuple[LoopConfig, BaseToolRegistry]:
    """Give several skills to a run: a new config whose prompt has a section per skill.

    A skill's memory is not written into the prompt: it is added to the config's
    ``memory_sources`` (after those already there), so it is read before every model call
    and sent as it is then, in the memory message after the system prompt, counted by the
    context budget and never stored in the conversation (see :mod:`looplet.memory`).

    Returns:
        A new config (``config`` is not changed) and ``registry`` (a new one if ``None``),
        with every skill's tools registered.
    """
    config = config if config is not None else LoopConfig()
    registry = registry if registry is not None else BaseToolRegistry()
    prompt = config.system_prompt
    sources: list[MemorySource] = []
    for skill in skills:
        skill.register(registry)
        prompt = skill.system_prompt(prompt, memory=False)
        source = skill.memory_source()
        if source is not None:
            sources.append(source)
    memory_sources = (*config.memory_sources, *sources)
    return dataclasses.replace(
        config, system_prompt=prompt, memory_sources=memory_sources
    ), registry


def load_skills(folder: str | Path) -> list[Skill]:
    """Load every subfolder of ``folder`` that holds a ``SKILL.md``, sorted by folder name.

    Raises:
        SkillLoadError: a skill fails to load, or two skills have the same name.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SkillLoadError(root, "not a directory of skills")
    skills: list[Skill] = []
    seen: dict[str, Path] = {}
    for sub in sorted(p for p in root.iterdir() if (p / "SKILL.md").is_file()):
        skill = Skill.from_folder(sub)
        if skill.name in seen:
            raise SkillLoadError(
                sub / "SKILL.md",
                f"skill name {skill.name!r} is already used by {seen[skill.name]}",
                line=1,
            )
        seen[skill.name] = sub
        skills.append(skill)
    return skills


def skill_activation_tool(
    skills: Iterable[Skill], registry: BaseToolRegistry, *, name: str = "activate_skill"
) -> ToolSpec:
    """A tool that lets the model pick up a skill while it runs.

    Its description lists the skills (their catalog entries). When the model calls it with a
    skill's name, the skill's tools are registered in ``registry`` (offered from the next
    model call on) and its instructions and memory come back as the result (the memory as
    it is at activation: a run's config, and so its memory sources, cannot change while it
    runs). It is ``free``: activating a skill does not use a step.

    Args:
        skills: the skills on offer.
        registry: the run's registry, where activated tools are added.
        name: the tool's name.
    """
    by_name = {skill.name: skill for skill in skills}
    catalog = "\n".join(
        f"- {s.name}: {s.description} (tools: {', '.join(s.tool_names) or 'none'})"
        for s in by_name.values()
    )

    def activate(skill: str) -> str:
        chosen = by_name.get(skill)
        if chosen is None:
            raise ValueError(f"no skill named {skill!r}; the skills are: {', '.join(by_name)}")
        chosen.register(registry)
        return chosen.prompt_section()

    return ToolSpec(
        name=name,
        description=f"Activate a skill: adds its tools and returns how to use them.\n{catalog}",
        parameters={
            "type": "object",
            "properties": {"skill": {"type": "string", "enum": list(by_name)}},
            "required": ["skill"],
        },
        execute=activate,
        free=True,
    )


# -- SKILL.md front matter ----------------------------------------------------------------------


def parse_front_matter(text: str, path: str | Path = "SKILL.md") -> tuple[dict[str, str], str]:
    """Split ``text`` into its front-matter header (as a dict) and its body.

    The header is the small YAML subset skill files use: between ``---`` lines, one
    ``key: value`` per line; values may be quoted (``"..."`` or ``'...'``), continue on
    indented lines, or be a ``|`` (keep lines) or ``>`` (fold lines) block. ``#`` lines and
    blank lines are skipped.

    Raises:
        SkillLoadError: no header, no closing ``---``, a line that is not ``key: value``, or a
            key given twice; the message names ``path`` and the line.
    """
    file = Path(path)
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise SkillLoadError(
            file, "expected a front-matter header: a first line '---', then 'name: ...'", line=1
        )
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise SkillLoadError(file, "the front matter opened here is never closed by '---'", line=1)
    header = _parse_header(lines[1:end], file)
    return header, "\n".join(lines[end + 1 :])


def _parse_header(lines: list[str], file: Path) -> dict[str, str]:
    header: dict[str, str] = {}
    key: str | None = None  # the key whose value indented lines continue
    style = ""  # "|" or ">" for a block value, "" for a plain one
    pieces: list[str] = []

    def close() -> None:
        if key is not None:
            header[key] = ("\n" if style == "|" else " ").join(pieces).strip()

    for number, line in enumerate(lines, start=2):
        stripped = line.strip()
        if key is not None and line[:1] in (" ", "\t") and stripped:
            pieces.append(stripped)
            continue
        if not stripped or stripped.startswith("#"):
            continue
        close()
        name, colon, value = stripped.partition(":")
        name = name.strip()
        if not colon or not name or " " in name:
            raise SkillLoadError(
                file, f"expected 'key: value' in the front matter, got {stripped!r}", line=number
            )
        if name in header:
            raise SkillLoadError(file, f"{name!r} is given twice", line=number)
        key, value = name, value.strip()
        style = value if value in ("|", ">") else ""
        pieces = [] if style else [_unquote(value, file, number)]
    close()
    return header


def _unquote(value: str, file: Path, line: int) -> str:
    if value[:1] in ('"', "'"):
        if len(value) < 2 or value[-1] != value[0]:
            raise SkillLoadError(file, f"unterminated quoted value {value!r}", line=line)
        return value[1:-1]
    return value


# -- tools.py -----------------------------------------------------------------------------------


def _load_tools(tools_py: Path) -> list[ToolSpec]:
    """The tools a skill's ``tools.py`` offers: its ``TOOLS``, or its own ``@tool`` functions."""
    # A name unique to the file: two skills' tools.py must not replace each other in
    # sys.modules (the original eval discovery collided on same-named files).
    digest = hashlib.sha1(str(tools_py.resolve()).encode()).hexdigest()[:12]
    module_name = f"looplet_skill_tools_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, tools_py)
    if spec is None or spec.loader is None:
        raise SkillLoadError(tools_py, "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise SkillLoadError(tools_py, f"failed to import: {type(exc).__name__}: {exc}") from exc
    listed = getattr(module, "TOOLS", None)
    if listed is not None:
        try:
            return [t if isinstance(t, ToolSpec) else tool(t) for t in listed]
        except (TypeError, ConfigurationError) as exc:
            raise SkillLoadError(
                tools_py, f"TOOLS holds something that is not a tool: {exc}"
            ) from exc
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, ToolSpec) and getattr(value.execute, "__module__", "") == module_name
    ]
    if not found:
        raise SkillLoadError(
            tools_py, "defines no tools: decorate functions with @tool, or list them in TOOLS"
        )
    return found
