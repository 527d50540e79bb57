"""`make bench`: synth time, jsii round trips and template size as personas grow, against a
plain CDK app with the same resources per persona, and the API calls a deploy makes.

Times are measured and printed, never asserted; counts are deterministic and asserted in
the tests (test_scale.py, test_lifecycle.py).
"""

from __future__ import annotations

import compileall
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The handlers import as the Lambda runtime sees them (tests/conftest.py does the same).
sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent / "workspaces_image_bakery" / "lambda")
)

from bakery_runtime.core import contract

from .harness.stacks import two_personas
from .harness.world import world

RUNS = 5
# Rounds of the in-process measurement (each declares and synthesizes all three apps).
IN_PROCESS_ROUNDS = 5
# The untimed runs write the bytecode of what they import (the CDK's modules among it), even
# where the shell sets PYTHONDONTWRITEBYTECODE: otherwise each timed run compiled the CDK
# modules it imports from source, and the library imports more of them than the baselines.
WRITE_BYTECODE = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
SIZES = (1, 10, 50)
# "same" and "same-prepared": a plain CDK app that declares the very template and assets
# the library (personas prepared by hand, or in the build) synthesized at that size.
KINDS = ("plain", "same", "library", "same-prepared", "prepared")
SAME_AS = {"same": "library", "same-prepared": "prepared"}
# The largest persona count measured per kind (all kinds reach the 50-bundle quota since
# scripts travel as assets and one document runs them).
LARGEST: dict[str, int] = {}
RESOURCE_LIMIT = 500
TEMPLATE_LIMIT = 1_000_000


ROOT = Path(__file__).resolve().parent.parent
# Import steps: (what is timed, what runs before it in the same fresh process).
CONSTRUCTS = (
    "from workspaces_image_bakery import ImageBakeryStack, ImageDesign, Persona, TaggingPolicy"
)
PLAIN_MODULES = (
    "from aws_cdk import aws_cloudformation, aws_lambda, aws_stepfunctions, custom_resources"
)
IMPORTS = {
    "import aws_cdk": ("import aws_cdk", ""),
    "then import workspaces_image_bakery": ("import workspaces_image_bakery", "import aws_cdk"),
    "then the constructs an app uses": (CONSTRUCTS, "import aws_cdk"),
    "(plain app: then its CDK modules)": (PLAIN_MODULES, "import aws_cdk"),
}


def compile_bytecode() -> None:
    """Compile the package's and the benchmark's bytecode first, as pip does when it
    installs a wheel: an editable install (and PYTHONDONTWRITEBYTECODE) would otherwise
    compile the library's sources in every run. The CDK modules the apps import are
    compiled by the untimed first runs (see WRITE_BYTECODE)."""
    for folder in ("workspaces_image_bakery", "tests"):
        compileall.compile_dir(str(ROOT / folder), quiet=1)


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_once(kind: str, personas: int, source: str = "") -> tuple[float, dict[str, Any]]:
    """Wall time of a whole process that declares and synthesizes, and what it reports
    (with the CPU time of the process and its jsii kernel, steadier on a shared machine).
    `source`: the cloud assembly a "same" kind declares again."""
    with tempfile.TemporaryDirectory() as outdir:
        cpu, start = cpu_seconds(), time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench_app",
                "same" if kind in SAME_AS else kind,
                str(personas),
                outdir,
                *([source] if source else []),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        seconds = time.perf_counter() - start
    reported = json.loads(done.stdout.strip().splitlines()[-1])
    reported["cpu"] = cpu_seconds() - cpu
    return seconds, reported


def import_seconds() -> dict[str, float]:
    """Median time of each import step, each in fresh processes."""
    timed: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(RUNS * 2):
        for name, (step, before) in IMPORTS.items():
            program = (
                f"import time\n{before}\nstart = time.perf_counter()\n{step}\n"
                "print(time.perf_counter() - start)\n"
            )
            done = subprocess.run(
                [sys.executable, "-c", program],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            timed[name].append(float(done.stdout.strip()))
    return {name: statistics.median(values) for name, values in timed.items()}


def measure() -> tuple[dict[tuple[str, int], tuple[float, dict[str, Any]]], dict[str, float]]:
    """Median wall and CPU time of paired runs (the kinds alternate within each round), and
    the in-process medians at the largest size."""
    times: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    facts: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as sources:
        for personas in SIZES:
            for kind, library_kind in SAME_AS.items():  # not timed
                assembly = Path(sources) / f"{kind}-{personas}"
                command = ["-m", "tests.bench_app", library_kind, str(personas), str(assembly)]
                subprocess.run(
                    [sys.executable, *command],
                    capture_output=True,
                    check=True,
                    cwd=ROOT,
                    env=WRITE_BYTECODE,
                )
            for _ in range(RUNS):
                for kind in KINDS:
                    source = str(Path(sources) / f"{kind}-{personas}") if kind in SAME_AS else ""
                    count = min(personas, LARGEST.get(kind, personas))
                    seconds, reported = run_once(kind, count, source)
                    times.setdefault((kind, personas), []).append(seconds)
                    cpu.setdefault((kind, personas), []).append(reported["cpu"])
                    facts[(kind, personas)] = reported
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.bench_app",
                "in-process",
                str(SIZES[-1]),
                str(IN_PROCESS_ROUNDS),
                str(Path(sources) / f"same-{SIZES[-1]}"),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        in_process = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        key: (
            statistics.median(t),
            {**facts[key], "cpu": statistics.median(cpu[key]), "walls": t, "cpus": cpu[key]},
        )
        for key, t in times.items()
    }, in_process


def paired(runs: list[float], baseline: list[float]) -> float:
    """The median of the ratios of runs made in the same round (the kinds alternate within
    a round): steadier than a ratio of medians when the machine's speed drifts."""
    return statistics.median(a / b for a, b in zip(runs, baseline, strict=True))


def largest(results: dict[tuple[str, int], tuple[float, dict[str, Any]]], kind: str) -> str:
    """Personas that fit one stack, from the growth between the smallest and largest runs."""
    (_, small), (_, big) = results[(kind, SIZES[0])], results[(kind, SIZES[-1])]
    span = min(SIZES[-1], LARGEST.get(kind, SIZES[-1])) - SIZES[0]
    per_resources = (big["resources"] - small["resources"]) / span
    per_bytes = (big["bytes"] - small["bytes"]) / span
    base_resources = small["resources"] - per_resources * SIZES[0]
    base_bytes = small["bytes"] - per_bytes * SIZES[0]
    by_resources = int((RESOURCE_LIMIT - base_resources) // per_resources)
    by_bytes = int((TEMPLATE_LIMIT - base_bytes) // per_bytes)
    return f"{min(by_resources, by_bytes)} ({by_resources} by resources, {by_bytes} by bytes)"


def scenario_calls() -> dict[str, dict[str, int]]:
    """WorkSpaces calls of each deploy scenario of the two-persona stack (the review's
    one-line summary, which each synth prints to stderr, is not part of the report)."""
    with contextlib.redirect_stderr(io.StringIO()):
        first, tag_change, version_bump = (
            two_personas(),
            two_personas(stage="test"),
            two_personas(stage="test", developer_version="1.1.0"),
        )
    scenarios: dict[str, dict[str, int]] = {}
    with world(first) as w:
        for name, template in (
            ("first deploy", first),
            ("no-change redeploy", first),
            ("tag-only change", tag_change),
            ("version bump (one persona)", version_bump),
        ):
            before = len(w.fake.calls)
            w.cloudformation.deploy(template)
            counted: dict[str, int] = {}
            for operation, _ in w.fake.calls[before:]:
                counted[operation] = counted.get(operation, 0) + 1
            scenarios[name] = counted
    return scenarios


def main() -> None:
    compile_bytecode()
    results, in_process = measure()
    print(
        f"Whole process, median of {RUNS} paired runs (the ratios: the median of each round's"
        " ratio). plain: a CDK app with one Provider, one"
        " state machine and per persona two custom resources and a WaitCondition with its"
        " handle; library: personas prepared by hand; prepared: prepared in the build; same"
        " (same-prepared): the template and assets the library (prepared) synthesized,"
        " declared again by a plain CDK app, one CfnResource each. 'vs same' compares"
        " library with same and prepared with same-prepared."
    )
    print(
        "kind           personas  seconds  vs plain  vs same  cpu s  vs plain  vs same  py MB"
        "  node MB  jsii calls  jsii/persona  resources  bytes/persona"
    )
    same_of = {library_kind: kind for kind, library_kind in SAME_AS.items()}
    for personas in SIZES:
        _, plain_facts = results[("plain", personas)]
        for kind in KINDS:
            seconds, facts = results[(kind, personas)]
            _, same_facts = results[(same_of.get(kind, kind), personas)]
            versus_same = (
                f"{paired(facts['walls'], same_facts['walls']):6.2f}x"
                if kind in same_of
                else "      -"
            )
            cpu_versus_same = (
                f"{paired(facts['cpus'], same_facts['cpus']):6.2f}x"
                if kind in same_of
                else "      -"
            )
            count = min(personas, LARGEST.get(kind, personas))
            print(
                f"{kind:14s} {count:8d}  {seconds:7.2f}"
                f"  {paired(facts['walls'], plain_facts['walls']):7.2f}x"
                f"  {versus_same}  {facts['cpu']:5.2f}"
                f"  {paired(facts['cpus'], plain_facts['cpus']):7.2f}x"
                f"  {cpu_versus_same}  {facts['peak_mb']:5d}  {facts['node_mb']:7d}"
                f"  {facts['jsii']:10d}  {facts['jsii'] / count:12.1f}"
                f"  {facts['resources']:9d}  {facts['bytes'] // count:13d}"
            )
    largest_size = SIZES[-1]
    print(
        f"\nIn one process, {largest_size} personas (declare and synthesize, median of"
        f" {IN_PROCESS_ROUNDS} rounds after one untimed round of each: imports, the CDK's"
        " template validator and the caches warm):"
    )
    for kind in ("plain", "same", "library"):
        print(
            f"  {kind:8s} {in_process[kind]:5.2f} s  {in_process[kind] / in_process['plain']:5.2f}x"
            f" plain  {in_process[kind] / in_process['same']:5.2f}x same"
        )
    print("\nImport, each step after the ones above it (median of fresh processes):")
    for name, seconds in import_seconds().items():
        print(f"  {name:36s} {seconds:5.2f} s")
    print("\nLargest persona count in one stack (500 resources, 1 MB template):")
    for kind in ("library", "prepared"):
        print(f"  {kind:9s} {largest(results, kind)}")
    print("\nWorkSpaces API calls per deploy scenario (two personas):")
    for name, counted in scenario_calls().items():
        total = sum(counted.values())
        detail = ", ".join(f"{op} {n}" for op, n in sorted(counted.items()))
        print(f"  {name:28s} {total:3d}  {detail}")
    print("\nImage polling (a first wait, then short polls; both cut to the deadline):")
    for minutes in (30, 45, 90):
        looks = 1 + max(0, minutes * 60 - contract.FIRST_IMAGE_WAIT_SECONDS) // (
            contract.IMAGE_POLL_SECONDS
        )
        print(f"  a {minutes}-minute build: {looks} looks at the image")
    print(
        f"  worst-case delay after AVAILABLE (builds of {contract.FIRST_IMAGE_WAIT_SECONDS // 60}"
        f" minutes or more): {contract.IMAGE_POLL_SECONDS} s plus the Lambda and the signal"
    )


if __name__ == "__main__":
    main()
