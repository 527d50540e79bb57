"""The constructs: persona, tagging policy, image, bundle and the shared build runtime."""

from .build_runtime import BuildRuntime
from .bundle import WorkspaceBundle
from .image import REBUILD_CONTEXT, WorkspaceImage
from .persona import ImageDesign, Persona
from .tagging_policy import TaggingPolicy

__all__ = [
    "REBUILD_CONTEXT",
    "BuildRuntime",
    "ImageDesign",
    "Persona",
    "TaggingPolicy",
    "WorkspaceBundle",
    "WorkspaceImage",
]
