"""Property-based: generated and malformed inputs to the public constructs either build or
fail with the library's own validation error; no other exception escapes."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import Duration, RemovalPolicy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workspaces_image_bakery import (
    BakeryValidationError,
    Clipboard,
    Compute,
    Distribution,
    ImageDesign,
    ImagePreparation,
    Persona,
    Release,
    TaggingPolicy,
    TemplateBuild,
)
from workspaces_image_bakery.core.compute import COMPUTE_TYPES
from workspaces_image_bakery.preparation import Agent, AgentKind

junk = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.lists(st.text(max_size=10), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
app_names = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), max_size=70
)


def either(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(good, good, junk)


preparations = st.builds(
    ImagePreparation,
    install_steps=either(st.lists(app_names, max_size=3)),
    clipboard=either(st.sampled_from(Clipboard)),
    agents=either(
        st.lists(
            st.builds(
                Agent,
                name=either(app_names),
                kind=either(st.sampled_from(AgentKind)),
                install=either(app_names),
                check=either(app_names),
                service=either(st.none() | st.sampled_from(["puppet.service", "x"])),
            ),
            max_size=2,
        )
    ),
)
persona_props = st.fixed_dictionaries(
    {
        "name": either(st.from_regex(r"[a-z0-9][a-z0-9-]{0,40}", fullmatch=True)),
        "design": either(st.sampled_from(ImageDesign)),
        "image_version": either(st.from_regex(r"[0-9A-Za-z][0-9A-Za-z._ -]{0,25}", fullmatch=True)),
        "template_workspace_id": either(st.from_regex(r"ws-[0-9a-zA-Z]{5,66}", fullmatch=True)),
        "baked_applications": either(st.lists(app_names, max_size=4)),
        "launch_applications": either(st.lists(app_names, max_size=4)),
        "config_management_agent": either(st.none() | app_names),
        "license_references": either(
            st.dictionaries(
                app_names, st.sampled_from(["/lic/a", "nope", "arn:aws:ssm:x"]), max_size=2
            )
        ),
        "preparation": st.none() | preparations,
        "compute": either(
            st.builds(
                Compute,
                compute_type=either(st.sampled_from([*COMPUTE_TYPES, "GRAPHICS", "HUGE"])),
                root_volume_gib=either(st.none() | st.integers(0, 2500)),
                user_volume_gib=either(st.none() | st.integers(0, 2500)),
            )
        ),
        "tags": either(
            st.dictionaries(
                st.sampled_from(
                    ["Role", "System", "Confidentiality", "Stage", "aws:x", "Name", "K" * 130]
                ),
                st.one_of(st.sampled_from(["internal", "dev", "r"]), st.text(max_size=300)),
                max_size=5,
            )
        ),
        "build": either(
            st.builds(
                TemplateBuild,
                managed_node_id=either(
                    st.none() | st.from_regex(r"mi-[0-9a-f]{15,19}", fullmatch=True)
                ),
                validation_commands=either(st.lists(app_names, max_size=2)),
                timeout=either(st.none() | st.builds(Duration.minutes, st.integers(1, 900))),
            )
        ),
        "release": either(
            st.builds(
                Release,
                retained_images=either(st.integers(-1, 25)),
                released_version=either(st.none() | st.sampled_from(["1.0", "0.9", "1 0"])),
                candidate_bundle=either(st.booleans()),
                removal_policy=either(
                    st.sampled_from([RemovalPolicy.DESTROY, RemovalPolicy.RETAIN])
                ),
            )
        ),
        "distribution": either(
            st.builds(
                Distribution,
                regions=either(st.lists(st.sampled_from(["eu-west-1", "Europe", ""]), max_size=2)),
                accounts=either(st.lists(st.sampled_from(["210987654321", "12345"]), max_size=2)),
            )
        ),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(props=persona_props)
def test_persona_builds_or_raises_its_own_validation_error(props: dict[str, Any]) -> None:
    stack = cdk.Stack(cdk.App(), "Generated")
    policy = TaggingPolicy(
        stack, "Tags", defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )
    try:
        persona = Persona(stack, "P", tagging_policy=policy, **props)
    except BakeryValidationError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.path == "Generated/P" or problem.path.startswith("Generated/P/")
            assert problem.field and problem.allowed
        assert "Generated/P" in str(error)
        return
    assert persona.image.image_name.startswith(f"{props['name']}-")
    assert len(persona.bundle.bundle_name) <= 64
