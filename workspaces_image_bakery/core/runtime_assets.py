"""Where the Lambda runtime lives inside the installed package, and its shared contract.

``lambda`` is a Python keyword, so the runtime folder is a Lambda asset, not an import
path. The contract module is loaded from that folder by file path, so the constructs and
the handlers read the very same property names.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .asset_zip import write_zip
from .cache_folder import default_cache_dir

LAMBDA_ASSET_DIR = Path(__file__).resolve().parent.parent / "lambda"
RUNTIME_PACKAGE = "bakery_runtime"


def runtime_sources() -> list[Path]:
    """What the functions' code holds: the runtime package's Python source files and those
    of its capability folders (each with an ``__init__.py``); no caches tests or type checks
    leave beside them, nothing else."""
    package = LAMBDA_ASSET_DIR / RUNTIME_PACKAGE
    folders = sorted(init.parent for init in package.glob("*/__init__.py"))
    return sorted([*package.glob("*.py"), *(f for d in folders for f in d.glob("*.py"))])


def runtime_zip(cache_dir: Path | None = None) -> Path:
    """:func:`runtime_sources` as one zip (``bakery_runtime/`` at its root, as Lambda imports
    the handlers), named by the digest of the files' names and contents, in `cache_dir`
    (default: :func:`~.cache_folder.default_cache_dir`). Packed on each call (a few ms) and
    compared with the file there, which is rewritten when it differs."""
    entries = [
        (path.relative_to(LAMBDA_ASSET_DIR).as_posix(), path.read_bytes())
        for path in runtime_sources()
    ]
    digest = hashlib.sha256()
    for name, content in entries:
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return write_zip(
        entries, (cache_dir or default_cache_dir()) / f"runtime-{digest.hexdigest()[:20]}.zip"
    )


if TYPE_CHECKING:
    from bakery_runtime.core import contract
    from bakery_runtime.distribution import contract as distribution_contract
    from bakery_runtime.evidence import inventory
    from bakery_runtime.patching import contract as patching_contract
    from bakery_runtime.rollout import contract as rollout_contract
else:

    def runtime_module(module: str):  # type: ignore[no-untyped-def]
        """A module of the runtime folder (``contract`` and the like, standard library only),
        loaded once by file path, so that the constructs and the handlers read the very same
        names."""
        name = f"_workspaces_image_bakery_{module.replace('/', '_')}"
        if name in sys.modules:
            return sys.modules[name]
        path = LAMBDA_ASSET_DIR / RUNTIME_PACKAGE / f"{module}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
        return loaded

    contract = runtime_module("core/contract")
    distribution_contract = runtime_module("distribution/contract")
    rollout_contract = runtime_module("rollout/contract")
    patching_contract = runtime_module("patching/contract")
    inventory = runtime_module("evidence/inventory")

__all__ = [
    "LAMBDA_ASSET_DIR",
    "RUNTIME_PACKAGE",
    "contract",
    "distribution_contract",
    "inventory",
    "patching_contract",
    "rollout_contract",
    "runtime_sources",
    "runtime_zip",
]
