"""workspaces-image-bakery: Amazon WorkSpaces Linux images and bundles as AWS CDK constructs."""

from .checklist import PersonaFacts, Scorecard
from .constructs import (
    REBUILD_CONTEXT,
    BuildRuntime,
    ImageDesign,
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
from .review import BASELINE_CONTEXT, load_baseline, write_review
from .stacks import ImageBakeryStack
from .validation import BakeryValidationError, Problem

__all__ = [
    "BASELINE_CONTEXT",
    "REBUILD_CONTEXT",
    "Agent",
    "AgentKind",
    "BakeryValidationError",
    "BuildRuntime",
    "Clipboard",
    "DesktopSettings",
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
