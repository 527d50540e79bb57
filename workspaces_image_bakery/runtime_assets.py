"""Where the Lambda runtime lives inside the installed package, and its shared contract.

``lambda`` is a Python keyword, so the runtime folder is a Lambda asset, not an import
path. The contract module is loaded from that folder by file path, so the constructs and
the handlers read the very same property names.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

LAMBDA_ASSET_DIR = Path(__file__).resolve().parent / "lambda"
RUNTIME_PACKAGE = "bakery_runtime"

if TYPE_CHECKING:
    from bakery_runtime import contract
else:

    def _load_contract():  # type: ignore[no-untyped-def]
        name = "_workspaces_image_bakery_contract"
        if name in sys.modules:
            return sys.modules[name]
        path = LAMBDA_ASSET_DIR / RUNTIME_PACKAGE / "contract.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    contract = _load_contract()

__all__ = ["LAMBDA_ASSET_DIR", "RUNTIME_PACKAGE", "contract"]
