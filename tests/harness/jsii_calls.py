"""Counts round trips to the jsii kernel (each request the Python side sends to Node.js)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jsii._kernel.providers import process


@contextmanager
def jsii_calls() -> Iterator[Counter[str]]:
    """Within the block, the requests sent to the kernel, by kind (create, invoke, get...)."""
    counts: Counter[str] = Counter()
    send = process._NodeProcess.send

    def counting(self: Any, request: Any, response_type: Any) -> Any:
        counts[type(request).__name__.lstrip("_").removesuffix("Request").lower()] += 1
        return send(self, request, response_type)

    process._NodeProcess.send = counting  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        process._NodeProcess.send = send  # type: ignore[method-assign]
