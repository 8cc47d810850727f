"""The read-only tools of :func:`looplet.presets.research_agent_preset`, over local documents.

:class:`ResearchLibrary` indexes the text files it is given (files, or folders walked without
following symlinked folders, tool folders such as ``.git`` skipped) once, when it is built:
each document gets an id, its path relative to the folder it was found in. The tools reach
only those documents, by id: ``list_sources``, ``search`` (lines ranked by how many of the
query's words they hold), ``read`` (numbered lines) and ``note`` (a finding with a quote that
must occur in the cited document, so every citation is checked), plus a free ``think`` and a
``done`` tool whose ``answer`` and ``sources`` are both required, each source an id or
``id:line`` that exists. Nothing writes: there is no tool that could, and a name that is not
a document's id (``../secret``, ``/etc/passwd``) is refused as ``permission_denied``.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Sequence
from pathlib import Path

from looplet._coding_tools import _looks_like_text, _walk_files
from looplet.errors import ConfigurationError, ToolError
from looplet.tools import BaseToolRegistry
from looplet.toolspec import ToolSpec, tool

__all__ = ["ResearchLibrary"]

_MAX_LINES = 400
_MAX_RESULTS = 50
_MAX_DOCUMENTS = 5000
_WORD = re.compile(r"\w{2,}")
_CITATION = re.compile(r"^(?P<source>.+?)(?::(?P<line>\d+)(?:-(?P<end>\d+))?)?$")


class ResearchLibrary:
    """Read-only research tools over local text documents, each reached by its id.

    Example::

        tools = ResearchLibrary("docs").registry()
        print(ResearchLibrary(["notes.md", "papers"]).documents)  # {"notes.md": ..., ...}

    Args:
        sources: a folder or a text file, or several. A folder's documents are named by their
            path relative to it (``guide/intro.md``); given several sources, a folder's ids
            start with its name (``docs/guide/intro.md``) and a file's id is its name.

    Raises:
        ConfigurationError: a source does not exist, two documents would get the same id,
            or there is no text document at all.
    """

    def __init__(self, sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> None:
        given = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
        if not given:
            raise ConfigurationError("research sources: give at least one folder or file")
        #: Each document's id and resolved path: source by source, each one's sorted by id.
        self.documents: dict[str, Path] = {}
        for source in given:
            self._index(Path(source), prefixed=len(given) > 1)
        if not self.documents:
            raise ConfigurationError(
                f"research sources {[os.fspath(s) for s in given]!r} hold no text document "
                "(binary files and tool folders such as .git are left out)"
            )

    def _index(self, source: Path, *, prefixed: bool) -> None:
        if not source.exists():
            raise ConfigurationError(f"research source {str(source)!r} does not exist")
        root = source.resolve()
        if root.is_file():
            found = [(root.name, root)] if _looks_like_text(root) else []
        else:
            prefix = f"{root.name}/" if prefixed else ""
            found = sorted(
                (prefix + path.relative_to(root).as_posix(), path.resolve())
                for path in _walk_files(root, root)
                if _looks_like_text(path)
            )
        for name, path in found:
            if name in self.documents and self.documents[name] != path:
                raise ConfigurationError(
                    f"two research documents would both be {name!r} ({self.documents[name]} "
                    f"and {path}); give the folder that holds both instead"
                )
            self.documents[name] = path
        if len(self.documents) > _MAX_DOCUMENTS:
            raise ConfigurationError(
                f"research sources hold more than {_MAX_DOCUMENTS} documents; give a smaller "
                f"folder than {str(source)!r}"
            )

    def registry(self) -> BaseToolRegistry:
        """The tools: list_sources, search, read, note, think (free) and done."""
        specs: list[ToolSpec] = [
            tool(concurrent_safe=True)(self.list_sources),
            tool(concurrent_safe=True)(self.search),
            tool(concurrent_safe=True)(self.read),
            tool(self.note),
            tool(free=True)(self.think),
            tool(self.done),
        ]
        return BaseToolRegistry(specs)

    # -- the tools: their docstrings are what the model reads -----------------------------------

    def list_sources(self) -> list[dict[str, object]]:
        """List the documents you may search and read: each one's id, line count and title."""
        listed: list[dict[str, object]] = []
        for name in self.documents:
            lines = self._lines(name)
            title = next((line.strip("# ").strip() for line in lines if line.strip()), "")
            listed.append({"source": name, "lines": len(lines), "title": title[:120]})
        return listed

    def search(self, query: str, limit: int = 10) -> list[dict[str, object]]:
        """Find the lines of the documents that hold the query's words, best first.

        Args:
            query: words to look for (case does not matter).
            limit: how many lines to return, at most.
        """
        words = {w.lower() for w in _WORD.findall(query)}
        if not words:
            raise ToolError("validation", f"the query {query!r} has no word to search for")
        if not 1 <= limit <= _MAX_RESULTS:
            raise ToolError("validation", f"limit must be 1 to {_MAX_RESULTS}, not {limit}")
        scored: list[tuple[int, int, str, int, str]] = []
        for order, name in enumerate(self.documents):
            for number, line in enumerate(self._lines(name), 1):
                found = words & {w.lower() for w in _WORD.findall(line)}
                if found:
                    scored.append((-len(found), order, name, number, line.strip()))
        scored.sort()
        return [
            {"source": name, "line": number, "text": text[:300]}
            for _, _, name, number, text in scored[:limit]
        ]

    def read(self, source: str, start: int = 1, count: int = 100) -> str:
        """Read part of a document, each line numbered (cite a line as ``source:line``).

        Args:
            source: the document's id, as list_sources gives it.
            start: the first line to read (1 is the first line).
            count: how many lines to read.
        """
        lines = self._lines(source)
        if not 1 <= count <= _MAX_LINES:
            raise ToolError("validation", f"count must be 1 to {_MAX_LINES}, not {count}")
        if not 1 <= start <= max(len(lines), 1):
            raise ToolError(
                "validation", f"{source!r} has {len(lines)} lines; start must be 1 to {len(lines)}"
            )
        shown = lines[start - 1 : start - 1 + count]
        body = "\n".join(f"{start + i}: {line}" for i, line in enumerate(shown))
        rest = len(lines) - (start - 1 + len(shown))
        return body + (
            f"\n[{rest} more lines: read from line {start + len(shown)}]" if rest else ""
        )

    def note(self, finding: str, source: str, quote: str) -> dict[str, object]:
        """Note a finding with its evidence: a quote copied exactly from one source.

        Args:
            finding: what you learned, in your words.
            source: the document the quote is from.
            quote: the exact words of the document that support the finding.
        """
        lines = self._lines(source)
        wanted = " ".join(quote.split())
        if not wanted:
            raise ToolError("validation", "the quote is empty; copy the supporting words")
        # The document as one line, whitespace collapsed, and where each of its lines starts.
        parts: list[str] = []
        starts: list[int] = []
        numbers: list[int] = []
        at = 0
        for number, line in enumerate(lines, 1):
            words = " ".join(line.split())
            if words:
                parts.append(words)
                starts.append(at)
                numbers.append(number)
                at += len(words) + 1
        found = " ".join(parts).find(wanted)
        if found < 0:
            raise ToolError(
                "validation",
                f"the quote is not in {source!r}; read the document and copy its words exactly",
            )
        line_number = numbers[bisect.bisect_right(starts, found) - 1]
        return {"finding": finding, "citation": f"{source}:{line_number}", "quote": wanted}

    def think(self, thought: str) -> str:
        """Think out loud: plan, or weigh what you found. Free: it costs no step.

        Args:
            thought: the thought.
        """
        return "ok"

    def done(self, answer: str, sources: list[str]) -> dict[str, object]:
        """Finish with the answer and the sources that support it.

        Args:
            answer: the answer to the question, from the sources only.
            sources: the documents the answer rests on, each an id or ``id:line`` (as a
                note's citation); at least one.
        """
        if not sources:
            raise ToolError("validation", "cite at least one source: an id or 'id:line'")
        for cited in sources:
            self._check_citation(str(cited))
        return {"answer": answer, "sources": list(sources)}

    # -- the documents ----------------------------------------------------------------------

    def _check_citation(self, cited: str) -> None:
        parsed = _CITATION.match(cited)
        name = cited if cited in self.documents or parsed is None else parsed["source"]
        lines = self._lines(name)  # refuses an unknown document
        if parsed is not None and name != cited and parsed["line"] is not None:
            first = int(parsed["line"])
            last = int(parsed["end"] or first)
            if not 1 <= first <= last <= len(lines):
                raise ToolError(
                    "validation",
                    f"the citation {cited!r} names lines {first}-{last}, but {name!r} has "
                    f"{len(lines)} lines",
                )

    def _lines(self, source: str) -> list[str]:
        """The document's lines, or a ToolError when ``source`` is not one of the ids."""
        path = self.documents.get(source)
        if path is None:
            shown = source if len(source) <= 200 else source[:200] + "..."
            raise ToolError(
                "permission_denied",
                f"{shown!r} is not one of the sources: these tools read only the documents "
                "they were given, by the id list_sources shows",
                context={"source": source},
            )
        # The file may have been replaced (by a symlink elsewhere) since it was indexed.
        try:
            if path.resolve(strict=True) != path:
                raise OSError("it is no longer the file that was indexed")
            return path.read_text(encoding="utf-8", errors="replace").splitlines()
        except (OSError, RuntimeError) as exc:
            raise ToolError("execution", f"{source!r} cannot be read now: {exc}") from None
