"""The layout by capability: a folder per capability over a small core, imports pointing one
way. Walks every import (including those under TYPE_CHECKING and inside functions) of the
library and of the Lambda runtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "workspaces_image_bakery"
RUNTIME = LIBRARY / "lambda" / "bakery_runtime"
CAPABILITIES = ("image_build", "release", "distribution", "rollout", "evidence")


def _modules(folder: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in folder.rglob("*.py"):
        if "__pycache__" in path.parts or (folder == LIBRARY and RUNTIME.parent in path.parents):
            continue
        parts = [package, *path.relative_to(folder).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                head = base[: len(base) - node.level + 1] if node.level else []
                module = ".".join([*head, *([node.module] if node.module else [])])
                candidates = [module, *(f"{module}.{a.name}" for a in node.names)]
            else:
                continue
            for candidate in candidates:
                found = candidate
                while found and found not in modules:
                    found = found.rpartition(".")[0]
                if found and found != name and modules[found].name != "__init__.py":
                    targets.add(found)
        edges[name] = targets
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize(
    ("folder", "package"),
    [(LIBRARY, "workspaces_image_bakery"), (RUNTIME, "bakery_runtime")],
)
def test_no_import_circles(folder: Path, package: str) -> None:
    assert _circles(_imports(_modules(folder, package))) == []


def test_the_walk_finds_a_circle_when_there_is_one() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("folder", "package"),
    [(LIBRARY, "workspaces_image_bakery"), (RUNTIME, "bakery_runtime")],
)
def test_the_core_imports_no_capability(folder: Path, package: str) -> None:
    edges = _imports(_modules(folder, package))
    core = f"{package}.core"
    wrong = {
        module: sorted(t for t in targets if not t.startswith(core + "."))
        for module, targets in edges.items()
        if module.startswith(core + ".")
    }
    assert {m: t for m, t in wrong.items() if t} == {}


def test_each_runtime_capability_has_its_construct_side() -> None:
    """A reader goes from construct to handler by name alone."""
    for capability in CAPABILITIES:
        assert (LIBRARY / capability / "__init__.py").is_file(), capability
        assert (RUNTIME / capability / "__init__.py").is_file(), capability


def _cdk_modules(source: str) -> set[str]:
    """The aws_cdk modules a source imports or reaches as ``cdk.<module>``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aws_cdk":
            found.add(node.module or "")
            if node.module == "aws_cdk":
                found |= {f"aws_cdk.{a.name}" for a in node.names if a.name.islower()}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "aws_cdk"}
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "cdk"
            and node.attr.islower()
        ):
            found.add(f"aws_cdk.{node.attr}")
    return found


def test_mypy_reads_every_aws_cdk_module_the_code_imports() -> None:
    """pyproject.toml has mypy skip aws_cdk's modules but the listed ones (a skipped module
    is Any): every module the package, the app, the examples, the tools and the tests
    import is listed, so none of their CDK calls goes unchecked."""
    import tomllib

    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    skipped = {m for o in overrides if o.get("follow_imports") == "skip" for m in o["module"]}
    read = {m for o in overrides if o.get("follow_imports") == "normal" for m in o["module"]}
    assert "aws_cdk.*" in skipped
    sources = [ROOT / "app.py"]
    for folder in ("workspaces_image_bakery", "examples", "tools", "tests"):
        sources += [p for p in (ROOT / folder).rglob("*.py") if "node_modules" not in p.parts]
    imported = set().union(*(_cdk_modules(p.read_text()) for p in sources))
    assert {"aws_cdk", "aws_cdk.aws_iam", "aws_cdk.assertions"} <= imported
    assert imported - read == set()
    # The walk sees the ways a module is reached.
    assert _cdk_modules(
        "import aws_cdk as cdk\nfrom aws_cdk import aws_ec2 as ec2, Stack\n"
        "from aws_cdk.aws_rds import DatabaseInstance\ncdk.aws_sqs.Queue\n"
    ) == {"aws_cdk", "aws_cdk.aws_ec2", "aws_cdk.aws_rds", "aws_cdk.aws_sqs"}
