"""The persona's distribution options: ``Persona(..., distribution=Distribution(...))``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Distribution"]


@dataclass(frozen=True, kw_only=True)
class Distribution:
    """Where a persona's image goes once it is built (docs/distribution.md). Checked at synth
    by the persona (errors name ``distribution.<field>``).

    :param regions: other Regions of this account that get a copy of each new image and a
        bundle on it (``CopyWorkspaceImage``, called in each Region). Default none. Region
        names, not the stack's own, each once, not tokens. Each copy counts against its
        Region's image quota (as two images at synth) and its bundle against the Region's 50
        custom bundles. Regional bundles follow the build, so they cannot be combined with a
        pinned ``release.released_version`` or ``release.candidate_bundle``.
    :param accounts: account ids (12 digits, not tokens) allowed to copy the image, in the
        stack's Region (``UpdateWorkspaceImagePermission``, ``AllowCopyImage``): exactly
        these, the rest are unshared. Default none. A shared image is never pruned.
    """

    regions: Sequence[str] = ()
    accounts: Sequence[str] = ()
