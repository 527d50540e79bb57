"""workspaces-image-bakery: Amazon WorkSpaces Linux images and bundles as AWS CDK constructs."""

from .constructs import (
    REBUILD_CONTEXT,
    BuildRuntime,
    ImageDesign,
    Persona,
    TaggingPolicy,
    WorkspaceBundle,
    WorkspaceImage,
)
from .stacks import ImageBakeryStack
from .validation import BakeryValidationError, Problem

__all__ = [
    "REBUILD_CONTEXT",
    "BakeryValidationError",
    "BuildRuntime",
    "ImageBakeryStack",
    "ImageDesign",
    "Persona",
    "Problem",
    "TaggingPolicy",
    "WorkspaceBundle",
    "WorkspaceImage",
]
