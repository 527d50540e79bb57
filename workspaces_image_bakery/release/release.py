"""Release with a way back: retained images, a released (pinned) version, a candidate bundle.

A persona keeps its last ``retained_images`` images (tagged with persona, version and
recipe). Its bundle serves ``released_version``: the version this deploy builds (the
default), or a retained earlier one, to which the bundle moves in place in seconds with no
build. With a candidate bundle, each new image goes to the candidate first; the persona's
bundle moves to it only when a reviewed change sets ``released_version`` to its version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from constructs import Construct

from ..core.runtime_assets import contract
from ..core.validation import Problems, context_of

IMAGE_QUOTA_CONTEXT = "workspaces-image-bakery:image-quota"
VERSION_PATTERN = r"[0-9A-Za-z][0-9A-Za-z._-]{0,19}"
VERSION_TEXT = "letters, digits and . _ -"


class ReleasedImage(Construct):
    """The persona's retained image of ``version``, found at deploy time by the bundle's
    handler (ownership, persona and version tags; then checked like a built image). A
    bundle bound to it makes no build; a version that is not retained fails the deploy with
    the versions that are."""

    def __init__(self, scope: Construct, id_: str, *, persona: str, version: str) -> None:
        super().__init__(scope, id_)
        problems = Problems.of(self)
        problems.text("persona", persona, max_len=64, tokens=False)
        check_version(problems, "version", version)
        problems.raise_if_any()
        self.persona = persona
        self.version = version

    @property
    def image_name(self) -> str | None:
        """Not known before the deploy finds the image: None."""
        return None

    def bundle_properties(self) -> dict[str, str]:
        """What the bundle's handler needs to find the image."""
        return {contract.RELEASED_VERSION: self.version, contract.PERSONA: self.persona}


def check_version(problems: Problems, field_name: str, version: Any) -> None:
    """An image version: 1-20 of ``0-9A-Za-z._-``, not a token (it names images)."""
    problems.text(
        field_name,
        version,
        max_len=20,
        pattern=VERSION_PATTERN,
        pattern_text=VERSION_TEXT,
        tokens=False,
    )


def check_retained_images(problems: Problems, value: Any) -> int:
    """1-20 images kept per persona (the one in use counts); returns a usable value."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and 1 <= value <= contract.MAX_RETAINED_IMAGES
    if not ok:
        problems.add(
            "retained_images",
            value,
            f"a whole number of images from 1 to {contract.MAX_RETAINED_IMAGES} (the one in "
            "use counts; 1 keeps none for a way back)",
        )
        return 1
    return int(value)


@dataclass(frozen=True)
class ReleasePlan:
    """What the persona's bundles serve, decided at synth time."""

    image_version: str
    released_version: str
    retained_images: int
    candidate_bundle: bool

    @property
    def serves_build(self) -> bool:
        """True when the persona's bundle follows this deploy's build."""
        return self.released_version == self.image_version

    def describe(self) -> str:
        """One line for the review."""
        served = (
            f"bundle serves {self.released_version} (this build)"
            if self.serves_build
            else f"bundle pinned to retained {self.released_version} (no build to serve it)"
        )
        candidate = (
            f"; candidate bundle gets each new image ({self.image_version} now)"
            if self.candidate_bundle
            else ""
        )
        return f"{served}{candidate}; keeps the last {self.retained_images} image(s)"


def plan_release(
    problems: Problems,
    *,
    image_version: str,
    released_version: str | None,
    retained_images: Any,
    candidate_bundle: Any,
) -> ReleasePlan:
    """Check the release props together; the plan the persona builds from."""
    keep = check_retained_images(problems, retained_images)
    if not isinstance(candidate_bundle, bool):
        problems.add("candidate_bundle", candidate_bundle, "True or False")
        candidate_bundle = False
    if released_version is not None:
        check_version(problems, "released_version", released_version)
    elif candidate_bundle:
        problems.add(
            "released_version",
            None,
            "the version the persona's bundle serves: with a candidate bundle a new image "
            "reaches users only when released_version names it (the first deploy: the "
            "image_version)",
        )
    released = released_version if isinstance(released_version, str) else image_version
    if keep < 2 and (released != image_version or candidate_bundle):
        problems.add(
            "retained_images",
            keep,
            "2 or more: a released version other than the one built, or a candidate bundle, "
            "needs the earlier image kept",
        )
    return ReleasePlan(str(image_version), str(released), keep, bool(candidate_bundle))


def image_quota(scope: Construct) -> int:
    """The Region's image quota the build checks before it starts: the
    ``workspaces-image-bakery:image-quota`` context value, default 40."""
    raw = context_of(scope, IMAGE_QUOTA_CONTEXT)
    if raw is None:
        return contract.DEFAULT_IMAGE_QUOTA
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if value < 1:
        problems = Problems.of(scope)
        problems.add(IMAGE_QUOTA_CONTEXT, raw, "a whole number of images, 1 or more")
        problems.raise_if_any()
    return value
