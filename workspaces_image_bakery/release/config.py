"""The persona's release options: ``Persona(..., release=Release(...))``."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import RemovalPolicy

from ..core.runtime_assets import contract

__all__ = ["Release"]


@dataclass(frozen=True, kw_only=True)
class Release:
    """How a persona's images reach its bundle, and how many are kept for a way back
    (docs/release.md). Checked at synth by the persona (errors name ``release.<field>``).

    :param retained_images: how many of the persona's images are kept (the one in use
        counts), 1-20. Default 3. Older ones are deleted once no bundle uses them, they have
        no application associations and they are not shared; 1 deletes each replaced image.
        Every persona of a Region holds its retained images plus the one being built, within
        the Region's image quota (context ``workspaces-image-bakery:image-quota``, default
        40).
    :param released_version: the image version the persona's bundle serves, 1-20 of
        ``0-9A-Za-z._-`` (not a token). Default None: the ``image_version`` this deploy
        builds. An earlier, retained version pins the bundle to it: the deploy moves the
        bundle back in place, with no build (a version that is not retained fails the deploy,
        naming those that are). Another version than ``image_version`` needs
        ``retained_images`` of 2 or more.
    :param candidate_bundle: release through a candidate bundle
        (``<name>-candidate-<digest>``): each new image goes to it first, for testers, and the
        persona's bundle moves to it only when ``released_version`` names its version.
        Default False. Needs ``released_version`` and ``retained_images`` of 2 or more; counts
        against the Region's 50 custom bundles.
    :param removal_policy: what happens to the persona's replaced or removed images and
        bundles: ``RemovalPolicy.DESTROY`` or ``RETAIN`` (what WorkSpaces images and bundles
        support). Default DESTROY.
    """

    retained_images: int = contract.DEFAULT_RETAINED_IMAGES
    released_version: str | None = None
    candidate_bundle: bool = False
    removal_policy: RemovalPolicy = RemovalPolicy.DESTROY
