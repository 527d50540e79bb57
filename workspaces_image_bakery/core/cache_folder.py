"""The library's cache folder (runtime zips, SBOM layers, scripts, the secret scan's clean
lines) and its one way of writing a file there."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/workspaces-image-bakery``, by default under ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workspaces-image-bakery"


def write_atomically(target: Path, data: bytes) -> Path:
    """`target` holding `data`: written beside it and moved into place, so a reader never
    sees half a file (two processes writing the same bytes at once leave those bytes).
    Raises OSError when the folder cannot be made or written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=".staging-", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as raw:
            raw.write(data)
        os.replace(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return target
