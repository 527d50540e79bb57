"""The AWS naming rules of WorkSpaces images, bundles and WorkSpaces, in one place: names,
descriptions and ids as the API (botocore's model) allows them. The constructs call these;
none of them writes its own pattern.
"""

from __future__ import annotations

from typing import Any

from constructs import IConstruct

from .validation import Problems, register_name

# CreateWorkspaceImage Name / CreateWorkspaceBundle BundleName: 1-64 of these.
NAME_PATTERN = r"[a-zA-Z0-9_./()\\-]+"
MAX_NAME_LENGTH = 64
# Image and bundle descriptions (images 1-256, bundles 1-255).
DESCRIPTION_PATTERN = r"[a-zA-Z0-9_./() -]+"
WORKSPACE_ID_PATTERN = r"ws-[0-9a-z]{8,63}"
IMAGE_ID_PATTERN = r"wsi-[0-9a-z]{9,63}"  # botocore's WorkspaceImageId
IMAGE_ID_TEXT = "wsi- and 9-63 lowercase letters or digits"
BUNDLE_ID_PATTERN = r"wsb-[0-9a-z]{8,63}"  # botocore's BundleId
BUNDLE_ID_TEXT = "wsb- and 8-63 lowercase letters or digits"


def check_name_and_description(
    problems: Problems,
    scope: IConstruct,
    kind: str,
    base_name: str,
    max_base_name: int,
    description: str,
    max_description: int,
) -> None:
    """The API's rules for image and bundle names and descriptions; names unique in the app.
    Neither may be a deploy-time token: both go into names and digests made at synth time."""
    problems.text(
        "base_name",
        base_name,
        max_len=max_base_name,
        pattern=NAME_PATTERN,
        pattern_text="letters, digits and _ . / ( ) -",
        tokens=False,
    )
    problems.text(
        "description",
        description,
        max_len=max_description,
        pattern=DESCRIPTION_PATTERN,
        pattern_text="letters, digits, spaces and _ . / ( ) -",
        tokens=False,
    )
    register_name(problems, scope, kind, "base_name", base_name)


def check_template_workspace_id(problems: Problems, workspace_id: Any) -> None:
    """``ws-`` + 8-63 lowercase letters or digits; a deploy-time token is accepted."""
    problems.text(
        "template_workspace_id",
        workspace_id,
        min_len=11,
        max_len=66,
        pattern=WORKSPACE_ID_PATTERN,
        pattern_text="ws- followed by 8-63 lowercase letters or digits",
    )
