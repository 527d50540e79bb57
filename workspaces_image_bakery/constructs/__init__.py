"""The constructs: persona, tagging policy, image, bundle, release, distribution, rollout and
the shared runtimes."""

from .build_runtime import BuildRuntime
from .bundle import IWorkspaceBundle, WorkspaceBundle
from .distribution import (
    DistributionRuntime,
    ImageShare,
    RegionalCopies,
    RegionalCopy,
    SharedImageCopy,
)
from .image import REBUILD_CONTEXT, IWorkspaceImage, WorkspaceImage
from .persona import ImageDesign, Persona
from .release import IMAGE_QUOTA_CONTEXT, ReleasedImage
from .rollout import RolloutSchedule, WorkspaceRollout
from .tagging_policy import DEFAULT_ALLOWED, DEFAULT_REQUIRED, TaggingPolicy

__all__ = [
    "DEFAULT_ALLOWED",
    "DEFAULT_REQUIRED",
    "IMAGE_QUOTA_CONTEXT",
    "REBUILD_CONTEXT",
    "BuildRuntime",
    "DistributionRuntime",
    "IWorkspaceBundle",
    "IWorkspaceImage",
    "ImageDesign",
    "ImageShare",
    "Persona",
    "RegionalCopies",
    "RegionalCopy",
    "ReleasedImage",
    "RolloutSchedule",
    "SharedImageCopy",
    "TaggingPolicy",
    "WorkspaceBundle",
    "WorkspaceImage",
    "WorkspaceRollout",
]
