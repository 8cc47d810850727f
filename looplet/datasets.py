"""Datasets of eval cases: a YAML, JSON, JSON Lines or CSV file of named cases, read and checked.

:func:`load_dataset` reads a file into a list of :class:`Case`, in file order, and checks
every case before returning any: a missing or unknown field, a value of the wrong type, a
duplicate or empty name is a :class:`DatasetError` naming the file, the case (number and
name) and the field. No pytest here: the plugin's ``@pytest.mark.looplet_dataset(path)``
(:mod:`pytest_looplet.datasets`) parametrizes an eval with the cases, and any script may loop
over them.

A case has these fields (YAML, JSON and JSON Lines hold them as written; a YAML or JSON file is
a list of cases, a JSON Lines file one case per line):

* ``name`` (required): a string, unique in the file. It names the pytest item
  (``eval_x[<name>]``) and so its cassette: keep it stable, and prefer ``kebab-case``.
* ``inputs`` (required): a mapping of strings to anything: what the agent is given.
* ``expected``: anything (default ``None``): the answer the eval checks against.
* ``expected_trajectory``: a list of expected steps as :func:`looplet.assert_trajectory`
  takes them: ``"done"``, ``{"tool": "convert", "args": {...}, "ok": true, "kind": ...}`` or
  ``["convert", {...}]``; checked when read, held as :class:`~looplet.ExpectedStep` objects.
* ``metadata``: a mapping of strings to anything (default empty): tags, sources, notes.
* ``threshold``: a number in [0, 1], the score this case must reach (it overrides the eval's).

A CSV file is one case per row under a header of flat columns: ``name``, ``inputs.<key>``
(at least one), ``expected`` or ``expected.<key>`` (a mapping), ``metadata.<key>``,
``threshold``, ``expected_trajectory`` (a JSON list in the cell). Cells are strings, except
``threshold`` (a number) and ``expected_trajectory``; an empty ``expected``, ``threshold`` or
``expected_trajectory`` cell means the field is not given.

YAML is read with PyYAML's safe loader (libyaml's when present), imported only for a YAML file: the
``looplet[pytest]`` extra brings it (through vcrpy).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplet.errors import ConfigurationError, LoopletError

if TYPE_CHECKING:
    from looplet._expected_steps import ExpectedStep

__all__ = ["FIELDS", "FORMATS", "Case", "DatasetError", "load_dataset"]

FIELDS = ("name", "inputs", "expected", "expected_trajectory", "metadata", "threshold")
"""The fields a case may have, in the order they are checked."""

FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl", ".csv": "csv"}
"""The file suffixes :func:`load_dataset` reads, and the format of each."""

_REQUIRED = ("name", "inputs")
_CSV_GROUPS = ("inputs", "expected", "metadata")


@dataclass(frozen=True, slots=True)
class Case:
    """One case of a dataset: what the agent gets, what it should produce, how to judge it.

    Attributes:
        name: unique in its dataset; the pytest item's id (``eval_x[<name>]``).
        inputs: what the agent is given (``looplet_agent.run(case.inputs)`` renders a
            mapping as ``key: value`` lines).
        expected: the expected answer, any value, or ``None``.
        expected_trajectory: the steps expected, for ``assert_trajectory(traj,
            case.expected_trajectory, ...)``, or ``None``.
        metadata: anything else about the case (tags, source); the plugin's reports carry it.
        threshold: the score this case must reach, or ``None`` for the eval's threshold.
        dataset: the file the case was read from.

    Treat a case as read-only: the plugin hands the same object to every eval (and every
    repetition) that uses its file, so a change would leak from one item into the next.
    """

    name: str
    inputs: dict[str, Any]
    expected: Any = None
    expected_trajectory: list[ExpectedStep] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None
    dataset: str | None = None


class DatasetError(LoopletError, ValueError):
    """A dataset file that cannot be used: the message names the file, the case and the field.

    Attributes:
        path: the file.
        problem: what is wrong, and what is expected.
        index: the case's 1-based number in the file, or ``None`` for the file as a whole.
        name: the case's name, when it has a usable one.
        field: the field at fault (``threshold``, ``inputs.city``, a CSV column), or ``None``.
        line: the line of the case in the file, where known (CSV, JSON Lines).
    """

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        index: int | None = None,
        name: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path, self.problem = str(path), problem
        self.index, self.name, self.field, self.line = index, name, field, line
        where = [self.path]
        if index is not None:
            case = f"case {index}" + (f" {name!r}" if name is not None else "")
            where.append(case + (f" (line {line})" if line is not None else ""))
        if field is not None:
            where.append(f"field {field}")
        super().__init__(f"{': '.join(where)}: {problem}")

    def with_path(self, path: str | Path) -> DatasetError:
        """The same error, naming the file as ``path`` (e.g. relative to the project)."""
        return DatasetError(
            path, self.problem, index=self.index, name=self.name, field=self.field, line=self.line
        )


def load_dataset(path: str | Path) -> list[Case]:
    """The cases of the dataset file at ``path``, in file order, each checked.

    The format comes from the suffix (:data:`FORMATS`). Every case is checked before any is
    returned, so a bad file never yields part of its cases.

    Raises:
        DatasetError: the file is missing, unreadable, not of its format, has no case, or a
            case is malformed (a required field missing, an unknown field, a wrong type, a
            duplicate or unusable name); the message names the file, case and field.

    Example::

        for case in load_dataset("cases.yaml"):
            traj = run_agent(case.inputs)
            assert answer_of(traj) == case.expected, case.name
    """
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DatasetError(
            path, f"unknown format {path.suffix!r}: a dataset is a {', '.join(FORMATS)} file"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a spreadsheet's BOM is no column
    except OSError as exc:
        raise DatasetError(path, f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(path, f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    rows: list[tuple[object, int | None]]
    rows = list(_csv_rows(path, text)) if kind == "csv" else _parsed(path, text, kind)
    if not rows:
        raise DatasetError(path, "has no cases: add at least one")
    cases: list[Case] = []
    first_of: dict[str, int] = {}
    for index, (raw, line) in enumerate(rows, start=1):
        case = _case(path, index, raw, line)
        if case.name in first_of:
            raise DatasetError(
                path,
                f"{case.name!r} is also the name of case {first_of[case.name]}; names must be "
                "unique (each names a pytest item and its cassette)",
                index=index,
                name=case.name,
                field="name",
                line=line,
            )
        first_of[case.name] = index
        cases.append(case)
    return cases


def _parsed(path: Path, text: str, kind: str) -> list[tuple[object, int | None]]:
    """The cases of a YAML, JSON or JSON Lines file as parsed (not yet checked), each with
    its line where known."""
    if kind == "jsonl":
        out: list[tuple[object, int | None]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    out.append((json.loads(line), number))
                except ValueError as exc:
                    raise DatasetError(path, f"line {number} is not JSON: {exc}") from None
        return out
    if kind == "json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatasetError(path, f"not JSON: {exc}") from None
    else:
        data = _yaml(path, text)
    if data is None:
        return []
    if not isinstance(data, list):
        raise DatasetError(path, f"expected a list of cases at the top level, got {_kind(data)}")
    return [(raw, None) for raw in data]


def _yaml(path: Path, text: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]  # PyYAML ships no annotations
    except ImportError:
        raise DatasetError(
            path,
            "reading YAML needs PyYAML, which is not installed: pip install 'looplet[pytest]' "
            "(it brings PyYAML) or pip install pyyaml; or write the cases as JSON or CSV",
        ) from None
    # libyaml's loader when PyYAML was built with it: about 4x faster than the pure-Python one.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        raise DatasetError(path, f"not YAML: {' '.join(str(exc).split())}") from None


def _csv_rows(path: Path, text: str) -> list[tuple[dict[str, Any], int]]:
    """Each row of a CSV file as a case mapping (flat columns folded), with its line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[dict[str, Any], int]] = []
    try:
        header = next(reader, None)
        if header is None:
            return []
        columns = _columns(path, header)
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            line, index = reader.line_num, len(rows) + 1
            if len(cells) != len(header):
                raise DatasetError(
                    path,
                    f"the row has {len(cells)} cells but the header {len(header)} columns",
                    index=index,
                    line=line,
                )
            raw = _csv_case(columns, cells)
            if "expected_trajectory" in raw:
                raw["expected_trajectory"] = _json_cell(path, index, line, raw)
            if "threshold" in raw:
                # A cell that is no number stays a string, which _case refuses by name.
                with contextlib.suppress(ValueError):
                    raw["threshold"] = float(raw["threshold"])
            rows.append((raw, line))
    except csv.Error as exc:
        raise DatasetError(path, f"not CSV at line {reader.line_num}: {exc}") from None
    return rows


def _columns(path: Path, header: list[str]) -> list[tuple[str, str | None]]:
    """``(field, key)`` of each CSV column: ``inputs.city`` is ``("inputs", "city")``."""
    columns: list[tuple[str, str | None]] = []
    for name in header:
        group, dot, key = name.partition(".")
        if header.count(name) > 1:
            raise DatasetError(path, "the column appears twice in the header", field=name)
        if dot and group in _CSV_GROUPS and key:
            columns.append((group, key))
        elif not dot and name in FIELDS and name not in ("inputs", "metadata"):
            columns.append((name, None))
        else:
            raise DatasetError(
                path,
                "not a dataset column: the columns are name, inputs.<key>, expected or "
                "expected.<key>, expected_trajectory, metadata.<key> and threshold",
                field=name or "(a column without a name)",
            )
    if ("expected", None) in columns and any(f == "expected" and k for f, k in columns):
        raise DatasetError(
            path, "give an expected column or expected.<key> columns, not both", field="expected"
        )
    for required in _REQUIRED:
        if not any(f == required for f, _ in columns):
            column = "an inputs.<key> column" if required == "inputs" else "a name column"
            raise DatasetError(path, f"the header has no {column}", field=required)
    return columns


def _csv_case(columns: list[tuple[str, str | None]], cells: list[str]) -> dict[str, Any]:
    """A row as a case mapping: ``inputs.city`` goes to ``inputs["city"]``; an empty
    optional cell is left out."""
    raw: dict[str, Any] = {}
    for (name, key), cell in zip(columns, cells, strict=True):
        if key is not None:
            raw.setdefault(name, {})[key] = cell
        elif name == "name" or cell.strip():
            raw[name] = cell
    return raw


def _json_cell(path: Path, index: int, line: int, raw: dict[str, Any]) -> Any:
    try:
        return json.loads(raw["expected_trajectory"])
    except ValueError as exc:
        name = raw.get("name")
        raise DatasetError(
            path,
            f'a CSV cell of expected steps is a JSON list, e.g. ["convert", "done"]: {exc}',
            index=index,
            name=name if isinstance(name, str) else None,
            field="expected_trajectory",
            line=line,
        ) from None


def _case(path: Path, index: int, raw: object, line: int | None) -> Case:
    """``raw`` checked field by field into a :class:`Case`."""
    if not isinstance(raw, Mapping):
        raise DatasetError(
            path, f"expected a mapping of fields, got {_kind(raw)}", index=index, line=line
        )
    name = raw.get("name")
    shown = name if isinstance(name, str) else None

    def bad(field_name: str, problem: str) -> DatasetError:
        return DatasetError(path, problem, index=index, name=shown, field=field_name, line=line)

    unknown = [key for key in raw if key not in FIELDS]
    if unknown:
        raise bad(str(unknown[0]), f"not a case field; a case has {', '.join(FIELDS)}")
    for required in _REQUIRED:
        if required not in raw:
            raise bad(required, "is missing (a case needs a name and inputs)")
    _check_name(name, bad)
    inputs = _mapping(raw["inputs"], "inputs", bad)
    metadata = _mapping(raw.get("metadata", {}), "metadata", bad)
    threshold = raw.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or math.isnan(threshold)
        or not 0.0 <= threshold <= 1.0
    ):
        raise bad("threshold", f"expected a number in [0, 1], got {threshold!r}")
    steps = raw.get("expected_trajectory")
    return Case(
        name=str(name),
        inputs=inputs,
        expected=raw.get("expected"),
        expected_trajectory=None if steps is None else _steps(steps, bad),
        metadata=metadata,
        threshold=None if threshold is None else float(threshold),
        dataset=str(path),
    )


def _check_name(name: object, bad: Any) -> None:
    if not isinstance(name, str):
        raise bad("name", f"expected a string, got {_kind(name)} {name!r}")
    if not name.strip() or name != name.strip():
        raise bad("name", f"{name!r} is empty or starts or ends with a space")
    if any(unicodedata.category(char) == "Cc" for char in name):
        raise bad("name", f"{name!r} holds a control character (a new line, a tab)")


def _mapping(value: object, field_name: str, bad: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise bad(field_name, f"expected a mapping of names to values, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise bad(field_name, f"keys are strings, got {_kind(key)} {key!r}")
    return dict(value)


def _steps(value: object, bad: Any) -> list[ExpectedStep]:
    """The expected steps, as :class:`~looplet.ExpectedStep` objects."""
    from looplet._expected_steps import normalise

    if isinstance(value, str | Mapping) or not isinstance(value, Sequence):
        raise bad("expected_trajectory", f"expected a list of steps, got {_kind(value)}")
    steps = []
    for number, step in enumerate(value, start=1):
        if isinstance(step, list) and len(step) == 2:
            step = (step[0], step[1])  # ["convert", {...}]: a (tool, args) pair
        try:
            steps.extend(normalise([step]))
        except ConfigurationError as exc:
            problem = str(exc).replace("expected step 1", f"step {number}", 1)
            raise bad(f"expected_trajectory[{number}]", problem) from None
    return steps


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
