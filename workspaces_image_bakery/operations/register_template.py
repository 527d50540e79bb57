"""``python -m workspaces_image_bakery.operations.register_template``: the template's one-time
registration, for hosts where the console script is not on the PATH."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from . import cli


def main(
    argv: Sequence[str] | None = None, client: Any = None, workspaces_client: Any = None
) -> int:
    """``python -m workspaces_image_bakery.operations.register_template``: the same as
    ``workspaces-image-bakery register-template`` (see :mod:`.cli`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    region: list[str] = []
    if "--region" in args:
        at = args.index("--region")
        region, args = args[at : at + 2], args[:at] + args[at + 2 :]
    aws = cli.Aws(ssm=client, workspaces=workspaces_client)
    return cli.run([*region, "register-template", *args], aws)


if __name__ == "__main__":
    raise SystemExit(main())
