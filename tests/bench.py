"""`make bench`: synth time and template size as personas grow, and the API calls a deploy makes.

Times are measured and printed, never asserted; counts are deterministic and asserted in
the tests (test_scale.py, test_lifecycle.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

# The handlers import as the Lambda runtime sees them (tests/conftest.py does the same).
sys.path.insert(
    0, str(Path(__file__).resolve().parent.parent / "workspaces_image_bakery" / "lambda")
)

from .harness.stacks import many_personas, two_personas
from .harness.world import world


def synth(personas: int) -> tuple[float, int]:
    start = time.perf_counter()
    resources = len(many_personas(personas)["Resources"])
    return time.perf_counter() - start, resources


def deploy_calls() -> dict[str, int]:
    template = two_personas()
    with world(template) as w:
        w.cloudformation.deploy(template)
        calls: dict[str, int] = {}
        for operation, _ in w.fake.calls:
            calls[operation] = calls.get(operation, 0) + 1
        return calls


def main() -> None:
    print("personas  synth seconds  resources")
    for personas in (1, 10, 25, 50):
        seconds, resources = synth(personas)
        print(f"{personas:8d}  {seconds:13.2f}  {resources:9d}")
    print("\nWorkSpaces API calls of a first deploy of two personas:")
    for operation, count in sorted(deploy_calls().items()):
        print(f"  {operation:28s} {count}")


if __name__ == "__main__":
    main()
