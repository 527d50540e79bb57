"""Input hardening of every public construct: secrets are found in every free-text input
and never echoed, every prop is type-checked, tags follow WorkSpaces' rules, and
deploy-time tokens pass where a deploy-time value makes sense."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import inspect
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import botocore.session
import pytest
from aws_cdk import Duration, RemovalPolicy
from aws_cdk.assertions import Template

from workspaces_image_bakery import (
    BakeryValidationError,
    Compute,
    Distribution,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    Persona,
    Release,
    TaggingPolicy,
    TemplateBuild,
    WorkspaceBundle,
    WorkspaceImage,
)
from workspaces_image_bakery.core.runtime_assets import contract
from workspaces_image_bakery.core.secret_scan import command_line_secrets, find_secrets, scan
from workspaces_image_bakery.core.tag_rules import (
    MAX_KEY_LENGTH,
    MAX_VALUE_LENGTH,
    TAG_CHARACTERS_PATTERN,
    is_tag_text,
)
from workspaces_image_bakery.core.validation import REDACTED, Problems, check_no_secrets
from workspaces_image_bakery.preparation import Agent, AgentKind

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
URL_PASSWORD = "pa55word"
BASIC_AUTH_URL = f"https://admin:{URL_PASSWORD}@repo.example.com/pkg.rpm"
CLI_PASSWORD = "hunter2x"
POLICY_DEFAULTS = {
    "Project": "desktops",
    "CostCenter": "cc-1",
    "Stage": "dev",
    "Role": "developer",
    "Confidentiality": "internal",
}


# --- builders: one fresh app per construct ----------------------------------------------


def new_stack(id_: str = "Hardening") -> cdk.Stack:
    return cdk.Stack(cdk.App(), id_)


def build_persona(stack: cdk.Stack | None = None, **overrides: Any) -> Persona:
    stack = stack or new_stack()
    props: dict[str, Any] = {
        "name": "developer",
        "design": ImageDesign.FULLY_BAKED,
        "image_version": "1.0.0",
        "template_workspace_id": "ws-dev0template1",
        **overrides,
    }
    if "tagging_policy" not in overrides:
        props["tagging_policy"] = TaggingPolicy(stack, "Tags", defaults=POLICY_DEFAULTS)
    return Persona(stack, "P", **props)


def build_image(stack: cdk.Stack | None = None, **overrides: Any) -> WorkspaceImage:
    props: dict[str, Any] = {
        "base_name": "direct",
        "description": "a directly declared image",
        "template_workspace_id": "ws-abcdefgh1",
        "persona": "direct",
        "recipe": {"version": "1"},
        "tags": {"Team": "platform"},
    }
    return WorkspaceImage(stack or new_stack(), "I", **{**props, **overrides})


def build_bundle(stack: cdk.Stack | None = None, **overrides: Any) -> WorkspaceBundle:
    props: dict[str, Any] = {
        "base_name": "direct",
        "description": "a directly declared bundle",
        "image": "wsi-0123456789",
    }
    return WorkspaceBundle(stack or new_stack(), "B", **{**props, **overrides})


def build_policy(stack: cdk.Stack | None = None, **overrides: Any) -> TaggingPolicy:
    return TaggingPolicy(stack or new_stack(), "Tags", **overrides)


def build_stack(stack: cdk.Stack | None = None, **overrides: Any) -> ImageBakeryStack:
    return ImageBakeryStack(cdk.App(), "Bakery", **overrides)


def summary(built: Any) -> Any:
    """What a construct made of its props, to compare an explicit None with the default."""
    if isinstance(built, Persona):
        return (built.image.fingerprint, built.bundle.bundle_name, built.tags)
    if isinstance(built, WorkspaceImage):
        return (built.fingerprint, built.image_name, built.tags)
    if isinstance(built, WorkspaceBundle):
        return (built.bundle_name, built.root_volume_gib, built.user_volume_gib, built.tags)
    policy = built.tagging_policy if isinstance(built, ImageBakeryStack) else built
    return (policy.defaults, policy.required, policy.allowed_values)


def error_of(build: Callable[..., Any], /, **overrides: Any) -> BakeryValidationError:
    with pytest.raises(BakeryValidationError) as error:
        build(**overrides)
    return error.value


def assert_hidden(error: BakeryValidationError, *secrets: str) -> None:
    """No secret in the message, the repr, or any problem's field, value or text."""
    shown = [str(error), repr(error)]
    for problem in error.problems:
        shown += [repr(problem), str(problem), repr(problem.value), problem.field]
        shown.append(problem.allowed)
    for secret in secrets:
        assert not any(secret in text for text in shown), (secret, str(error))


# --- 1. every free-text input of every public construct is scanned ----------------------

IMAGE_SECRETS: list[tuple[str, dict[str, Any], str]] = [
    ("base_name", {"base_name": AWS_KEY}, "base_name"),
    ("description", {"description": f"key {AWS_KEY}"}, "description"),
    ("persona", {"persona": AWS_KEY}, "persona"),
    ("template id", {"template_workspace_id": AWS_KEY}, "template_workspace_id"),
    ("recipe value", {"recipe": {"step": BASIC_AUTH_URL}}, "recipe[step]"),
    ("recipe list item", {"recipe": {"steps": ["ok", BASIC_AUTH_URL]}}, "recipe[steps][1]"),
    ("recipe nested map", {"recipe": {"a": {"b": [{"c": AWS_KEY}]}}}, "recipe[a][b][0][c]"),
    ("recipe key", {"recipe": {AWS_KEY: "x"}}, f"recipe[{REDACTED}] (key)"),
    ("tag value", {"tags": {"Team": AWS_KEY}}, "tags[Team]"),
    ("tag key", {"tags": {AWS_KEY: "x"}}, f"tags key {REDACTED}"),
    ("rebuild token", {"rebuild_token": AWS_KEY}, "rebuild_token"),
]
BUNDLE_SECRETS: list[tuple[str, dict[str, Any], str]] = [
    ("base_name", {"base_name": AWS_KEY}, "base_name"),
    ("description", {"description": f"key {AWS_KEY}"}, "description"),
    ("tag value", {"tags": {"Team": AWS_KEY}}, "tags[Team]"),
    ("tag key", {"tags": {AWS_KEY: "x"}}, f"tags key {REDACTED}"),
    ("image id", {"image": AWS_KEY}, "image"),
]
POLICY_SECRETS: list[tuple[str, dict[str, Any], str]] = [
    ("default value", {"defaults": {"Project": AWS_KEY}}, "defaults[Project]"),
    ("default key", {"defaults": {AWS_KEY: "x"}}, f"defaults key {REDACTED}"),
    ("required key", {"required": ["Role", AWS_KEY]}, "required[1]"),
    ("allowed key", {"allowed_values": {AWS_KEY: ["x"]}}, f"allowed_values key {REDACTED}"),
    ("allowed value", {"allowed_values": {"Stage": ["dev", AWS_KEY]}}, "allowed_values[Stage][1]"),
]
PERSONA_SECRETS: list[tuple[str, dict[str, Any], str]] = [
    ("tag key", {"tags": {AWS_KEY: "x"}}, f"tags key {REDACTED}"),
    ("agent", {"config_management_agent": f"puppet {AWS_KEY}"}, "config_management_agent"),
    (
        "licence key",
        {"baked_applications": [AWS_KEY], "license_references": {AWS_KEY: "/lic/x"}},
        f"license_references[{REDACTED}]",
    ),
    (
        "remote assistance agent's install command",
        {
            "preparation": ImagePreparation(
                agents=[
                    Agent(
                        "remote-help",
                        AgentKind.REMOTE_ASSISTANCE,
                        install=f"curl -fsSLO {BASIC_AUTH_URL}",
                        check="true",
                    )
                ]
            )
        },
        "preparation.agents[0].install",
    ),
    (
        "validation command",
        {
            "preparation": ImagePreparation(),
            "build": TemplateBuild(
                managed_node_id="mi-00000000000000001",
                validation_commands=["true", f"curl -u admin:{CLI_PASSWORD} https://x"],
            ),
        },
        "build.validation_commands[1]",
    ),
]
SECRET_CASES = [
    *[(build_image, *case) for case in IMAGE_SECRETS],
    *[(build_bundle, *case) for case in BUNDLE_SECRETS],
    *[(build_policy, *case) for case in POLICY_SECRETS],
    *[(build_persona, *case) for case in PERSONA_SECRETS],
]


@pytest.mark.parametrize(
    ("build", "case", "overrides", "field"),
    SECRET_CASES,
    ids=[f"{c[0].__name__}-{c[1]}" for c in SECRET_CASES],
)
def test_every_free_text_input_is_scanned(
    build: Callable[..., Any], case: str, overrides: dict[str, Any], field: str
) -> None:
    error = error_of(build, **overrides)
    flagged = [p for p in error.problems if p.allowed.startswith("no secrets")]
    assert field in [p.field for p in flagged], (case, str(error))
    assert_hidden(error, AWS_KEY, URL_PASSWORD)


# --- 2. passwords on command lines ------------------------------------------------------

COMMAND_LINES_WITH_PASSWORDS = [
    f"curl -fsSL {BASIC_AUTH_URL} -o /tmp/pkg.rpm",
    f"wget ftp://bob:{CLI_PASSWORD}@ftp.example.com/tools.tar.gz",
    f"curl -u admin:{CLI_PASSWORD} https://repo.example.com/pkg.rpm",
    f"curl -uadmin:{CLI_PASSWORD} https://repo.example.com/pkg.rpm",
    f"curl --user admin:{CLI_PASSWORD} https://repo.example.com/pkg.rpm",
    f"curl --user=admin:{CLI_PASSWORD} https://repo.example.com/pkg.rpm",
    f"mysql --password {CLI_PASSWORD} -e 'select 1'",
    f"mysql --password={CLI_PASSWORD} -e 'select 1'",
    f"tool --db-password '{CLI_PASSWORD}'",
    f"mysql -u root -p{CLI_PASSWORD} app",
    f"PASSWORD={CLI_PASSWORD} ./install.sh",
    f"export DB_PASSWORD={CLI_PASSWORD}",
    f"echo passwd={CLI_PASSWORD} >> /etc/app.conf",
    f"export MYSQL_PWD={CLI_PASSWORD}",
    f"sshpass -p {CLI_PASSWORD} scp app.tar host:/tmp",
    f"openssl enc -d -pass pass:{CLI_PASSWORD} -in a.enc",
]
COMMAND_LINES_WITHOUT_PASSWORDS = [
    "curl -fsSL http://example.com:8080/pkg.rpm -o /tmp/pkg.rpm",
    "curl http://example.com:8080/a@b",
    "ssh deploy@host.example.com uptime",
    "git clone git@github.com:org/repo.git",
    "docker pull nginx:1.25",
    "docker run -u 1000:1000 nginx:1.25",
    "docker run --user app:staff nginx:1.25",
    "tag role:dev",
    "tool --password-file /etc/app/password",
    "docker login --password-stdin < /run/secrets/registry",
    "psql --no-password -h db.example.com",
    "curl -u admin:$REPO_PASSWORD https://repo.example.com/pkg.rpm",
    "PASSWORD=$(aws secretsmanager get-secret-value --secret-id app)",
    "curl https://${REPO_USER}:${REPO_PASSWORD}@repo.example.com/pkg.rpm",
    "mysql -h db.example.com -p app",
    "sshpass -f /run/secrets/ssh ssh -p 2222 host",
    "echo 'PasswordAuthentication no' >> /etc/ssh/sshd_config",
    "cd $PWD && PWD=/tmp ls",
    "openssl enc -d -pass env:ARCHIVE_KEY -in a.enc",
    "git push -u origin main:main",
]


@pytest.mark.parametrize("line", COMMAND_LINES_WITH_PASSWORDS)
def test_passwords_on_command_lines_are_found(line: str) -> None:
    found = find_secrets({"step": line})
    assert found.get("step"), line
    assert {secret for _, secret in command_line_secrets(line)} & {CLI_PASSWORD, URL_PASSWORD}


@pytest.mark.parametrize("line", COMMAND_LINES_WITHOUT_PASSWORDS)
def test_command_lines_without_passwords_pass(line: str) -> None:
    assert find_secrets({"step": line}) == {}, line


def test_the_command_line_rules_leave_option_names_alone() -> None:
    # detect-secrets' own keyword detector flags this one ("no host"); the rules do not.
    assert command_line_secrets("ssh -o PasswordAuthentication=no host") == ()


def test_a_persona_with_a_password_in_its_preparation_is_refused() -> None:
    steps = [f"curl -u admin:{CLI_PASSWORD} https://repo.example.com/a.rpm -o /tmp/a.rpm"]
    error = error_of(build_persona, preparation=ImagePreparation(install_steps=steps))
    assert error.fields == ["preparation.install_steps[0]"]
    assert "Basic Auth Credentials" in error.problems[0].allowed
    assert_hidden(error, CLI_PASSWORD)


def test_a_persona_with_password_free_commands_builds() -> None:
    steps = [line for line in COMMAND_LINES_WITHOUT_PASSWORDS if "$" not in line]
    build_persona(preparation=ImagePreparation(install_steps=steps))


# --- 3. a flagged value never reaches a message -----------------------------------------


def test_a_secret_that_also_breaks_a_pattern_is_redacted_everywhere() -> None:
    error = error_of(build_image, description=f"mirror {BASIC_AUTH_URL}")
    described = [p for p in error.problems if p.field == "description"]
    assert len(described) == 2  # the pattern rule and the scan
    assert all(p.value == REDACTED for p in described)
    assert_hidden(error, URL_PASSWORD, BASIC_AUTH_URL)


def test_a_secret_in_a_field_with_several_problems_on_every_construct() -> None:
    cases: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
        (build_persona, {"tags": {"Stage": AWS_KEY}}, "tags[Stage]"),
        (build_persona, {"tags": {f"aws:{AWS_KEY}": "x"}}, "tag key"),
        (build_bundle, {"base_name": f"b {AWS_KEY}", "description": f"{AWS_KEY},"}, "base_name"),
        (build_bundle, {"image": f"{BASIC_AUTH_URL}"}, "image"),
        (build_policy, {"defaults": {"Project": "x" * 250 + AWS_KEY}}, "defaults[Project]"),
        (build_policy, {"allowed_values": {"Stage": [f"{AWS_KEY}#"]}}, "allowed_values[Stage]"),
        (build_stack, {"tag_defaults": {"Project": f"{AWS_KEY}*"}}, "tag_defaults[Project]"),
    ]
    for build, overrides, field in cases:
        error = error_of(build, **overrides)
        assert field in error.fields, (overrides, str(error))
        assert all(p.value == REDACTED for p in error.problems if p.field == field)
        assert_hidden(error, AWS_KEY, URL_PASSWORD)


def test_a_list_value_holding_a_secret_is_redacted() -> None:
    error = error_of(build_persona, launch_applications=[f"PASSWORD={CLI_PASSWORD}"])
    assert "launch_applications" in error.fields
    assert_hidden(error, CLI_PASSWORD)


@pytest.mark.parametrize("scan_first", [True, False])
def test_redaction_does_not_depend_on_the_order_of_the_checks(scan_first: bool) -> None:
    problems = Problems("Stack/Thing")
    value = f"curl --user admin:{CLI_PASSWORD} x"
    if scan_first:
        check_no_secrets(problems, {"step": value})
    problems.add("step", value, "letters only")
    problems.add("steps", [value, "ok"], "at most one step")
    problems.add("other", f"prefix {CLI_PASSWORD}", "anything else")
    if not scan_first:
        check_no_secrets(problems, {"step": value})
    with pytest.raises(BakeryValidationError) as error:
        problems.raise_if_any()
    assert [p.value for p in error.value.problems] == [REDACTED] * 4
    assert_hidden(error.value, CLI_PASSWORD, value)


# --- 4. every prop of every public construct is checked ---------------------------------

# (build, prop, a wrong-typed value, None is the documented default)
PROP_CASES: list[tuple[Callable[..., Any], str, Any, bool]] = [
    (build_persona, "name", 42, False),
    (build_persona, "design", "thin", False),
    (build_persona, "image_version", 1.0, False),
    (build_persona, "template_workspace_id", 7, False),
    (build_persona, "tagging_policy", "policy", False),
    (build_persona, "baked_applications", "git", False),
    (build_persona, "launch_applications", "docker-ce", False),
    (build_persona, "config_management_agent", 8, True),
    (build_persona, "license_references", ["/licenses/x"], True),
    (build_persona, "preparation", {"patch_os": True}, True),
    (build_persona, "tags", "Role=dev", True),
    (build_persona, "compute", {"compute_type": "VALUE"}, True),
    (build_persona, "build", "mi-00000000000000001", True),
    (build_persona, "release", {"retained_images": 2}, True),
    (build_persona, "distribution", ["eu-west-1"], True),
    (build_persona, "rollout", "cron(0 3 ? * SUN *)", True),
    (build_persona, "vulnerability_gate", "HIGH", True),
    (build_persona, "patch_schedule", "rate(1 day)", True),
    (build_image, "base_name", 5, False),
    (build_image, "description", 5, False),
    (build_image, "template_workspace_id", 5, False),
    (build_image, "persona", 5, False),
    (build_image, "recipe", "version=1", False),
    (build_image, "tags", ["Team=platform"], False),
    (build_image, "build_timeout", {"hours": 6}, True),
    (build_image, "rebuild_token", 7, True),
    (build_image, "removal_policy", "destroy", False),
    (build_image, "prepared_by", "mi-0123456789abcdef0", True),
    (build_image, "version", 1.0, True),
    (build_image, "retained_images", "3", False),
    (build_image, "expectations", ["design=zero"], True),
    (build_bundle, "base_name", 5, False),
    (build_bundle, "description", 5, False),
    (build_bundle, "image", 7, False),
    (build_bundle, "compute_type", 4, False),
    (build_bundle, "root_volume_gib", "80", True),
    (build_bundle, "user_volume_gib", "10", True),
    (build_bundle, "tags", "Team=platform", True),
    (build_bundle, "removal_policy", "destroy", False),
    (build_policy, "defaults", ["Project"], True),
    (build_policy, "required", "Role", False),
    (build_policy, "allowed_values", "dev", True),
    (build_stack, "tag_defaults", ["Project"], True),
    (build_stack, "required_tags", "Role", False),
    (build_stack, "allowed_tag_values", "dev", True),
    (build_stack, "notification_topic", "arn:aws:sns:us-east-1:123456789012:ops", True),
    (build_stack, "create_notification_topic", "yes", False),
    (build_stack, "vulnerability_gate", "HIGH", True),
]
CONSTRUCTS: dict[Callable[..., Any], Callable[..., Any]] = {
    build_persona: Persona,
    build_image: WorkspaceImage,
    build_bundle: WorkspaceBundle,
    build_policy: TaggingPolicy,
    build_stack: ImageBakeryStack,
}


def test_the_prop_table_covers_every_prop() -> None:
    for build, construct in CONSTRUCTS.items():
        params = inspect.signature(construct.__init__).parameters.values()
        props = {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert props == {prop for b, prop, _, _ in PROP_CASES if b is build}, construct


@pytest.mark.parametrize(
    ("build", "prop", "wrong", "none_is_default"),
    PROP_CASES,
    ids=[f"{c[0].__name__}-{c[1]}" for c in PROP_CASES],
)
def test_none_and_wrong_types_are_validation_errors(
    build: Callable[..., Any], prop: str, wrong: Any, none_is_default: bool
) -> None:
    assert prop in error_of(build, **{prop: wrong}).fields
    if none_is_default:
        assert summary(build(**{prop: None})) == summary(build())
    else:
        assert prop in error_of(build, **{prop: None}).fields


# A persona's option groups: (group, field, a wrong-typed value, None is the default)
GROUP_CASES: list[tuple[type[Any], str, Any, bool]] = [
    (Compute, "compute_type", 4, False),
    (Compute, "root_volume_gib", "80", True),
    (Compute, "user_volume_gib", "10", True),
    (TemplateBuild, "managed_node_id", 12, True),
    (TemplateBuild, "validation_commands", "true", False),
    (TemplateBuild, "timeout", {"hours": 6}, True),
    (Release, "retained_images", "3", False),
    (Release, "released_version", 1.0, True),
    (Release, "candidate_bundle", "yes", False),
    (Release, "removal_policy", "destroy", False),
    (Distribution, "regions", "eu-west-1", False),
    (Distribution, "accounts", "210987654321", False),
]
GROUPS = {
    Compute: "compute",
    TemplateBuild: "build",
    Release: "release",
    Distribution: "distribution",
}


def test_the_group_table_covers_every_field() -> None:
    for kind in GROUPS:
        fields = {f.name for f in dataclasses.fields(kind)}
        assert fields == {field for k, field, _, _ in GROUP_CASES if k is kind}, kind


@pytest.mark.parametrize(
    ("kind", "field", "wrong", "none_is_default"),
    GROUP_CASES,
    ids=[f"{GROUPS[c[0]]}.{c[1]}" for c in GROUP_CASES],
)
def test_each_field_of_a_group_is_checked_and_named(
    kind: type[Any], field: str, wrong: Any, none_is_default: bool
) -> None:
    group = GROUPS[kind]
    named = f"{group}.{field}"
    assert named in error_of(build_persona, **{group: kind(**{field: wrong})}).fields
    if none_is_default:
        assert summary(build_persona(**{group: kind(**{field: None})})) == summary(build_persona())
    else:
        assert named in error_of(build_persona, **{group: kind(**{field: None})}).fields


def test_a_group_of_the_wrong_type_says_what_to_give() -> None:
    error = error_of(build_persona, release={"retained_images": 2})
    (problem,) = error.problems
    assert problem.field == "release"
    assert problem.allowed == (
        "a Release (from workspaces_image_bakery import Release), or None for its defaults; "
        "Release(**values) makes one of a mapping"
    )
    # The build group may carry commands with secrets: only its type is shown.
    error = error_of(build_persona, build={"validation_commands": [f"PASSWORD={CLI_PASSWORD}"]})
    assert error.problems[0].value == "<dict>"
    assert_hidden(error, CLI_PASSWORD)


def test_the_option_groups_are_frozen_and_exported() -> None:
    import workspaces_image_bakery as bakery

    for kind in GROUPS:
        assert getattr(bakery, kind.__name__) is kind
        assert dataclasses.is_dataclass(kind)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(kind(), dataclasses.fields(kind)[0].name, None)
        for field in dataclasses.fields(kind):
            assert f":param {field.name}:" in (kind.__doc__ or ""), (kind, field.name)
            assert "Default" in (kind.__doc__ or "").split(f":param {field.name}:")[1]


def test_more_wrong_types() -> None:
    assert "recipe" in error_of(build_image, recipe={"when": object()}).fields[0]
    assert "recipe[x]" in error_of(build_image, recipe={"x": float("inf")}).fields
    assert "build_timeout" in error_of(build_image, build_timeout=Duration.minutes(5)).fields
    assert (
        "build.timeout"
        in error_of(build_persona, build=TemplateBuild(timeout=Duration.hours(13))).fields
    )
    assert "removal_policy" in error_of(build_bundle, removal_policy=RemovalPolicy.SNAPSHOT).fields
    assert "image" in error_of(build_bundle, image="ami-0123456789").fields
    assert "tags" in error_of(build_image, tags={"Team": 7}).fields


# --- 5. tags on every construct follow WorkSpaces' rules, from one module ---------------


def test_tag_characters_follow_the_botocore_models() -> None:
    session = botocore.session.get_session()
    workspaces = session.get_service_model("workspaces")
    key, value = workspaces.shape_for("TagKey"), workspaces.shape_for("TagValue")
    assert (key.metadata["min"], key.metadata["max"]) == (1, MAX_KEY_LENGTH)
    assert value.metadata["max"] == MAX_VALUE_LENGTH
    # The WorkSpaces model declares no character pattern today: if it gets one, it must
    # be the one the library enforces, the AWS-wide pattern Directory Service declares.
    for shape in (key, value):
        assert shape.metadata.get("pattern", TAG_CHARACTERS_PATTERN) == TAG_CHARACTERS_PATTERN
    directory = session.get_service_model("ds")
    for name in ("TagKey", "TagValue"):
        assert directory.shape_for(name).metadata["pattern"] == TAG_CHARACTERS_PATTERN


def test_the_tag_checker_is_the_java_pattern() -> None:
    regex = pytest.importorskip("regex")  # reads \p{L}, as Java does
    pattern = regex.compile(TAG_CHARACTERS_PATTERN)
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) in ("Cn", "Cs"):
            continue  # unassigned in this Python's Unicode tables, or a lone surrogate
        assert bool(pattern.fullmatch(char)) == is_tag_text(char), hex(code)


@pytest.mark.parametrize(
    "text", ["ü", "Grüße", "a b", "dev-1", "x@y.z", "a:b/c=d+e_f", "日本", "١٢٣", ""]
)
def test_tag_text_accepted(text: str) -> None:
    assert is_tag_text(text)


@pytest.mark.parametrize("text", ["#", "*", ",", "a;b", "tab\t", "new\nline", "😀", "$", "!"])
def test_tag_text_refused(text: str) -> None:
    assert not is_tag_text(text)


TAG_CASES: list[tuple[dict[str, str], str]] = [
    ({"Cost#Center": "x"}, "tag key"),
    ({"Team": "a,b"}, "tags[Team]"),
    ({"aws:team": "x"}, "tag key"),
    ({contract.OWNER_TAG_KEY: "x"}, "tag key"),
    ({"k" * (MAX_KEY_LENGTH + 1): "x"}, "tag key"),
    ({"Team": "v" * (MAX_VALUE_LENGTH + 1)}, "tags[Team]"),
    ({f"K{i}": "v" for i in range(50)}, "tags"),
]


@pytest.mark.parametrize("build", [build_image, build_bundle])
@pytest.mark.parametrize(("tags", "field"), TAG_CASES, ids=[c[1] for c in TAG_CASES])
def test_plain_constructs_check_their_tags(
    build: Callable[..., Any], tags: dict[str, str], field: str
) -> None:
    assert field in error_of(build, tags=tags).fields


def test_the_policy_and_the_persona_use_the_same_tag_rules() -> None:
    assert "tags[System]" in error_of(build_persona, tags={"System": "a*b"}).fields
    assert "tag key" in error_of(build_persona, tags={"Cost Center!": "x"}).fields
    assert "defaults[Project]" in error_of(build_policy, defaults={"Project": "a#b"}).fields
    allowed = {"Stage": ["dev", "q*a"]}
    assert "allowed_values[Stage]" in error_of(build_policy, allowed_values=allowed).fields
    assert "tag key" in error_of(build_policy, required=["Cost,Center"]).fields
    build_image(tags={"Équipe": "plateforme numérique", "Team": ""})


# --- 6. deploy-time tokens --------------------------------------------------------------


def test_token_tag_values_are_accepted_and_reach_the_template(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scanned: list[str] = []

    def recording_scan(values: Mapping[str, str]) -> Any:
        scanned.extend(values.values())
        return scan(values)

    monkeypatch.setattr("workspaces_image_bakery.core.validation.scan", recording_scan)
    stack = new_stack("Tokens")
    stage = cdk.CfnParameter(stack, "Stage").value_as_string
    template_id = cdk.CfnParameter(stack, "TemplateId").value_as_string
    system = cdk.Fn.import_value("system-name")
    policy = TaggingPolicy(
        stack, "Tags", defaults={**POLICY_DEFAULTS, "CostCenter": cdk.Aws.ACCOUNT_ID}
    )
    build_persona(
        stack,
        tagging_policy=policy,
        template_workspace_id=template_id,
        tags={"Stage": stage, "System": f"sys-{system}"},
    )
    build_image(stack, template_workspace_id=template_id, tags={"Team": system})
    build_bundle(stack, image=cdk.Fn.import_value("image-id"), tags={"Team": stage})
    assert scanned and not any("Token[" in value for value in scanned)

    template = Template.from_stack(stack).to_json()
    tags_of = {
        path: {t["Key"]: t["Value"] for t in resource["Properties"][contract.TAGS]}
        for path, resource in template["Resources"].items()
        if resource["Type"] in (contract.IMAGE_RESOURCE_TYPE, contract.BUNDLE_RESOURCE_TYPE)
    }
    persona_tags = [tags for path, tags in tags_of.items() if path.startswith("P")]
    assert len(persona_tags) == 2
    for tags in persona_tags:
        assert tags["Stage"] == {"Ref": "Stage"}
        assert tags["CostCenter"] == {"Ref": "AWS::AccountId"}
        assert tags["System"] == {"Fn::Join": ["", ["sys-", {"Fn::ImportValue": "system-name"}]]}
    direct = {path: tags for path, tags in tags_of.items() if not path.startswith("P")}
    assert {"Fn::ImportValue": "system-name"} in [t.get("Team") for t in direct.values()]
    assert {"Ref": "Stage"} in [t.get("Team") for t in direct.values()]


def test_tokens_are_refused_where_the_value_is_fingerprinted() -> None:
    stack = new_stack("Fingerprinted")
    token = cdk.Fn.import_value("text")
    assert error_of(build_image, stack=stack, description=token).fields == ["description"]
    assert error_of(build_bundle, base_name=token).fields == ["base_name"]
    assert "name" in error_of(build_persona, name=token).fields


def test_the_scan_reads_a_clean_line_once_and_still_finds_every_secret() -> None:
    """Lines found clean are remembered (a persona's image and bundle repeat its tags and
    names); a secret is found whatever was scanned before, and a file that held a secret
    teaches nothing."""
    from workspaces_image_bakery.core import secret_scan

    clean = "the office persona bundle 4f2a9c"
    key = "AKIA" + "QWERTYUIOPASDFGH"  # an access key id's shape
    assert secret_scan.scan({"a": clean, "b": "another plain value 17"}) == {}
    known = secret_scan._CLEAN_LINES
    assert secret_scan._digest(clean) in known
    found = secret_scan.scan({"a": clean, "b": f"aws_access_key_id={key}"})
    assert set(found) == {"b"} and key in found["b"].secrets
    assert secret_scan._digest(f"aws_access_key_id={key}") not in known
    # Lines that YAML could join with a neighbour are never remembered.
    secret_scan.scan({"c": "password:", "d": "  indented value"})
    assert secret_scan._digest("password:") not in known
    assert secret_scan._digest("  indented value") not in known
    # A line in several fields is scanned once and reported in each of them.
    twice = f"aws_access_key_id={key}"
    found = secret_scan.scan({"name": twice, "tags[Name]": twice, "other": clean})
    assert set(found) == {"name", "tags[Name]"}
    assert all(key in hit.secrets for hit in found.values())
    # A repeated line that YAML reads with its neighbour keeps its place: the second
    # "password:" block is still read as a keyword and its value.
    value = "  Xk9#qLm2vR7wT4z"
    found = secret_scan.scan({"a": f"name:\n{value}", "b": f"password:\n{value}"})
    assert set(found) == {"b"} and found["b"].kinds == ("Secret Keyword",)


def test_clean_lines_are_kept_for_the_next_synth_by_digest_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next process reads the lines this one found clean from the cache folder (as
    digests, never as text) and does not give them to detect-secrets again; a line with a
    secret is never kept; another detect-secrets version or other rules use another file."""
    from detect_secrets.core.secrets_collection import SecretsCollection

    from workspaces_image_bakery.core import secret_scan

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for state in ("_CLEAN_LINES", "_NEW_CLEAN_LINES", "_LOADED"):
        monkeypatch.setattr(secret_scan, state, type(getattr(secret_scan, state))())
    clean = "the kiosk persona bundle 7d1e0b"
    key = "AKIA" + "ZXCVBNMLKJHGFDSA"
    assert secret_scan.scan({"a": clean}) == {}
    assert secret_scan.scan({"b": f"aws_access_key_id={key}"})
    secret_scan.save_clean_lines()  # what the process does at exit
    (kept,) = tmp_path.glob("workspaces-image-bakery/clean-lines-*.txt")
    assert kept == secret_scan._clean_lines_file()
    assert kept.read_text().split() == [secret_scan._digest(clean)]
    assert clean not in kept.read_text() and key not in kept.read_text()
    kept.write_text(kept.read_text() + "not-a-digest\n")  # only digests are ever read

    # The next process: the kept line is not scanned again, and a secret is still found.
    for state in ("_CLEAN_LINES", "_NEW_CLEAN_LINES", "_LOADED"):
        monkeypatch.setattr(secret_scan, state, type(getattr(secret_scan, state))())
    scanned: list[str] = []
    scan_file = SecretsCollection.scan_file

    def recorded(self: SecretsCollection, *filenames: str) -> None:
        scanned.extend(Path(name).read_text() for name in filenames)
        scan_file(self, *filenames)

    monkeypatch.setattr(SecretsCollection, "scan_file", recorded)
    assert secret_scan.scan({"a": clean}) == {}
    assert scanned == []
    assert "not-a-digest" not in secret_scan._CLEAN_LINES
    assert secret_scan.scan({"a": clean, "b": f"aws_access_key_id={key}"})
    assert scanned == [f"aws_access_key_id={key}\n"]

    # Another detect-secrets version (or a change to the rules) starts an empty file.
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.0.0-another")
    assert secret_scan._clean_lines_file() != kept


def test_without_a_cache_folder_the_scan_remembers_lines_in_its_process_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No home folder (or no source file to key the cache by): the scan still runs, finds
    every secret and writes nothing."""
    from workspaces_image_bakery.core import secret_scan

    for state in ("_CLEAN_LINES", "_NEW_CLEAN_LINES", "_LOADED"):
        monkeypatch.setattr(secret_scan, state, type(getattr(secret_scan, state))())

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(secret_scan, "_clean_lines_file", no_home)
    key = "AKIA" + "POIUYTREWQLKJHGF"
    assert secret_scan.scan({"a": "a homeless persona 5c3b"}) == {}
    assert secret_scan.scan({"b": f"aws_access_key_id={key}"})
    assert secret_scan._LOADED == [None]
    secret_scan.save_clean_lines()  # nothing to write to, and no error


@pytest.mark.parametrize(
    "line",
    [
        "aws configure set aws_secret_access_key wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "export KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "curl -H 'X-Secret: 9f8e7d6c5b4a39281706f5e4d3c2b1a0' https://repo.example/x",
        "curl -H 'Authorization: Bearer abcdef0123456789abcdef' https://repo.example/x",
        "export TOKEN=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_Xg",
        'echo \'{"auths":{"r.example":{"auth":"dXNlcjpwYXNzd29yZDEyMw=="}}}\' > ~/.docker/c.json',
        "printf 'Zm9vYmFy\\n-----END OPENSSH PRIVATE KEY-----\\n' >> /etc/ssh/key",
    ],
)
def test_keys_and_header_secrets_the_defaults_miss_are_found(line: str) -> None:
    """What the security review got through: a secret key after a space, a bare secret key,
    a secret in an HTTP header, a JWT, a docker config's auth, the last line of a key."""
    from workspaces_image_bakery.core.secret_scan import scan

    assert scan({"install_steps[0]": line})


@pytest.mark.parametrize(
    "line",
    [
        "git checkout 3f786850e387550fdab836ed7e6dc881de23001b",
        "echo e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "curl -H 'Content-Type: application/json' https://repo.example/x",
        "aws configure set aws_secret_access_key $KEY",
        "apt-get install -y /opt/pkgs/Libreoffice7/x86_64/LibreOffice_7.6_Linux_x86-64.deb",
        "grep -q auth /etc/pam.d/common-auth",
        "openssl x509 -in c.pem | grep -- '-----END CERTIFICATE-----'",
    ],
)
def test_digests_references_and_plain_headers_are_not_secrets(line: str) -> None:
    from workspaces_image_bakery.core.secret_scan import scan

    assert not scan({"install_steps[0]": line})
