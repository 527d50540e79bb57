"""workspaces-image-bakery: Amazon WorkSpaces Linux images and bundles as AWS CDK constructs."""

from .checklist import PersonaFacts, Scorecard
from .constructs import (
    DEFAULT_ALLOWED,
    DEFAULT_REQUIRED,
    REBUILD_CONTEXT,
    BuildRuntime,
    ImageDesign,
    IWorkspaceBundle,
    IWorkspaceImage,
    Persona,
    TaggingPolicy,
    WorkspaceBundle,
    WorkspaceImage,
)
from .constructs.run_command import RunCommandPreparation
from .preparation import (
    Agent,
    AgentKind,
    Clipboard,
    DesktopSettings,
    ImagePreparation,
    OperatingSystem,
    StreamingProtocol,
)
from .review import BASELINE_CONTEXT, REVIEW_CONTEXT, load_baseline, write_review
from .stacks import ImageBakeryStack
from .validation import BakeryValidationError, Problem

__all__ = [
    "BASELINE_CONTEXT",
    "DEFAULT_ALLOWED",
    "DEFAULT_REQUIRED",
    "REBUILD_CONTEXT",
    "REVIEW_CONTEXT",
    "Agent",
    "AgentKind",
    "BakeryValidationError",
    "BuildRuntime",
    "Clipboard",
    "DesktopSettings",
    "IWorkspaceBundle",
    "IWorkspaceImage",
    "ImageBakeryStack",
    "ImageDesign",
    "ImagePreparation",
    "OperatingSystem",
    "Persona",
    "PersonaFacts",
    "Problem",
    "RunCommandPreparation",
    "Scorecard",
    "StreamingProtocol",
    "TaggingPolicy",
    "WorkspaceBundle",
    "WorkspaceImage",
    "load_baseline",
    "write_review",
]
