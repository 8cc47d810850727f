"""Keeps .ci/lowest-constraints.txt and the floors of pyproject.toml's extras in step.

    python .ci/floors.py check   fail unless every requirement of every extra is pinned to its
                                 declared floor (or above it, on a line marked ``# above-floor``)
    python .ci/floors.py above   print ``name==floor`` for each requirement pinned above its floor

CI runs ``check`` before installing from the constraints file, and installs the ``above`` list
afterwards to test those floors on their own.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / ".ci" / "lowest-constraints.txt"
FLOOR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9.]*)$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([0-9][0-9.]*)\s*(#.*)?$")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _version(raw: str) -> tuple[int, ...]:
    parts = [int(p) for p in raw.split(".")]
    while parts and parts[-1] == 0:  # 1.20 == 1.20.0
        parts.pop()
    return tuple(parts)


def declared_floors() -> dict[str, str]:
    """Name -> floor of every third-party requirement of pyproject.toml's extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    floors: dict[str, str] = {}
    for extra, requirements in project["optional-dependencies"].items():
        for requirement in requirements:
            if requirement.startswith("looplet["):
                continue
            match = FLOOR.match(requirement.split(";")[0].strip())  # a marker: not a floor
            if match is None:
                sys.exit(f"pyproject.toml extra {extra!r}: {requirement!r} has no 'name>=X' floor")
            floors[_name(match[1])] = match[2]
    return floors


def pins() -> dict[str, tuple[str, bool]]:
    """Name -> (pinned version, marked above-floor) from the constraints file."""
    found: dict[str, tuple[str, bool]] = {}
    for number, line in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line.strip())
        if match is None:
            sys.exit(f"{CONSTRAINTS.name}:{number}: expected 'name==X.Y.Z', got {line!r}")
        found[_name(match[1])] = (match[2], "above-floor" in (match[3] or ""))
    return found


def main(command: str) -> int:
    floors, pinned = declared_floors(), pins()
    problems = [
        f"{n}>={f} is not pinned: add {n}=={f}" for n, f in floors.items() if n not in pinned
    ]
    problems += [
        f"{n} is pinned but no extra requires it: remove it" for n in pinned.keys() - floors
    ]
    above = []
    for name in sorted(floors.keys() & pinned.keys()):
        floor, (version, marked) = floors[name], pinned[name]
        if _version(version) == _version(floor):
            continue
        if marked and _version(version) > _version(floor):
            above.append(f"{name}=={floor}")
        else:
            problems.append(f"{name} is pinned to {version} but its declared floor is {floor}")
    if problems:
        print(f"{CONSTRAINTS} disagrees with pyproject.toml:", *problems, sep="\n  ")
        return 1
    if command == "above":
        print(" ".join(above))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] not in (["check"], ["above"]):
        sys.exit("usage: python .ci/floors.py check|above")
    sys.exit(main(sys.argv[1]))
