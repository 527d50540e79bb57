"""The constructs: persona, tagging policy, image, bundle and the shared build runtime."""

from .build_runtime import BuildRuntime
from .bundle import IWorkspaceBundle, WorkspaceBundle
from .image import REBUILD_CONTEXT, IWorkspaceImage, WorkspaceImage
from .persona import ImageDesign, Persona
from .tagging_policy import DEFAULT_ALLOWED, DEFAULT_REQUIRED, TaggingPolicy

__all__ = [
    "DEFAULT_ALLOWED",
    "DEFAULT_REQUIRED",
    "REBUILD_CONTEXT",
    "BuildRuntime",
    "IWorkspaceBundle",
    "IWorkspaceImage",
    "ImageDesign",
    "Persona",
    "TaggingPolicy",
    "WorkspaceBundle",
    "WorkspaceImage",
]
