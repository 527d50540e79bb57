"""The preparation phase of the build: Run Command on the template's managed node, the
reboot, the recipe marker, and only then the image. Driven through the deployed workflow
definition against the WorkSpaces and SSM fakes (both behind botocore-validated clients)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
import pytest
from bakery_runtime.core import contract
from botocore.exceptions import ClientError

from workspaces_image_bakery import (
    BakeryValidationError,
    ImageBakeryStack,
    ImageDesign,
    ImagePreparation,
    TemplateBuild,
)

from .fakes.ssm_service import Node
from .harness import invariants
from .harness.cloudformation import DeployError
from .harness.stacks import two_personas
from .harness.world import World, world

# The logical id (and so the fake's name) of the stack's script document.
SCRIPT_DOCUMENT = "WorkSpacesImageBakeryRuntimeRunScript"

NODE = "mi-00000000000000001"
TEMPLATE = "ws-off0template1"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return two_personas(office_node=NODE)


@pytest.fixture
def prepared(template: dict[str, Any]) -> Iterator[tuple[World, Node, dict[str, Any]]]:
    with world(template, foreign=True) as w:
        node = w.ssm.add_node(TEMPLATE)
        assert node.node_id == NODE
        yield w, node, invariants.snapshot_foreign(w)


def test_the_build_prepares_reboots_checks_the_marker_then_images(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    w, node, foreign = prepared
    w.cloudformation.deploy(template)
    office = next(i for i in w.fake.images.values() if i.name.startswith("office-"))
    assert office.state == "AVAILABLE"
    # The template carries this build's recipe marker.
    recipe = next(
        r["Properties"]["Recipe"]
        for r in template["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE and r["Properties"]["Persona"] == "office"
    )
    assert f"recipe={recipe}" in node.version_file
    # Once after the preparation, once after the image (the seal's stash goes back).
    assert w.fake.workspaces[TEMPLATE].reboots == 2
    calls = [p for op, p in w.ssm.calls if op == "SendCommand"]
    sends = [p["DocumentName"] for p in calls]
    assert len(sends) == 4 and sends[1:3] == ["RecipeMarker-fake", "Inventory-fake"]
    # The stack's one script document runs the preparation and the seal, each named by
    # its key and digest (the image resource's properties) and its purpose.
    assert sends[0] == sends[3] and sends[0] in w.cloudformation.documents
    purposes = [p.get("Parameters", {}).get("purpose") for p in calls]
    assert purposes == [["prepare"], None, None, ["seal"]] and node.seals == 1
    office = next(
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE and r["Properties"]["Persona"] == "office"
    )
    for call, script in zip((calls[0], calls[3]), ("PreparationScript", "SealScript"), strict=True):
        assert call["Parameters"]["scriptKey"] == [office[script]["Key"]]
        assert call["Parameters"]["sha256"] == [office[script]["Sha256"]]
    # Order: preparation, reboot, marker, image (the developer persona is prepared by hand).
    visited = [s for run in w.cloudformation.runs for s in run.visited]
    office_run = next(r for r in w.cloudformation.runs if "PrepareTemplate" in r.visited)
    order = [
        s
        for s in office_run.visited
        if s
        in (
            "PrepareTemplate",
            "RebootTemplate",
            "VerifyMarker",
            "TakeInventory",
            "SealTemplate",
            "WaitForSealToSettle",
            "AssessTemplate",
            "Image",
            "WriteRecord",
            "RestoreTemplate",
            "SignalSuccess",
        )
    ]
    assert order == [
        "PrepareTemplate",
        "RebootTemplate",
        "VerifyMarker",
        "TakeInventory",
        "SealTemplate",
        "WaitForSealToSettle",
        "AssessTemplate",
        "Image",
        "WriteRecord",
        "RestoreTemplate",
        "SignalSuccess",
    ]
    assert visited.count("PrepareTemplate") == 1
    invariants.check(w, foreign=foreign, deployed=template)


def test_the_document_runs_the_script_with_bash_and_keeps_its_exit_code(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    """The script is not in the template: the stack's one document downloads it from its
    asset by the key it is sent, checks its SHA-256 against the digest it is sent (one of
    those the stack declares: the document's allowed values), runs it with bash, keeps its
    exit code and deletes it."""
    import hashlib

    from workspaces_image_bakery.image_build.run_command import (
        DIGEST_MISMATCH,
        DOWNLOAD_DIR,
        SCRIPT_CACHE,
    )

    w, _, _ = prepared
    w.cloudformation.deploy(template)
    (document,) = [
        d for n, d in w.cloudformation.documents.items() if n.startswith(SCRIPT_DOCUMENT)
    ]
    download, step = document["mainSteps"]
    assert download["action"] == "aws:downloadContent"
    assert download["inputs"]["sourceType"] == "S3"
    # A folder (trailing slash): the agent keeps the object's name, the script's key.
    assert download["inputs"]["destinationPath"] == f"{DOWNLOAD_DIR}/"
    assert step["action"] == "aws:runShellScript"
    lines = step["inputs"]["runCommand"]
    assert 'bash "$script"; status=$?' in lines and lines[-1] == 'exit "$status"'
    assert 'rm -f "$script"' in lines and f"  exit {DIGEST_MISMATCH}" in lines
    assert f"script='{DOWNLOAD_DIR}/{{{{ scriptKey }}}}'" in lines
    (check,) = [line for line in lines if "sha256sum --check" in line and "$script" in line]
    assert "{{ sha256 }}" in check
    # Every script the stack declares, and nothing else, may be sent.
    declared = {
        r["Properties"][key]["Sha256"]
        for r in template["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE
        for key in ("PreparationScript", "ValidationScript", "SealScript")
        if key in r["Properties"]
    }
    assert set(document["parameters"]["sha256"]["allowedValues"]) == declared
    for digest in declared:
        script = (SCRIPT_CACHE / f"{digest}.sh").read_bytes()
        assert hashlib.sha256(script).hexdigest() == digest
    assert any(b"recipe=" in (SCRIPT_CACHE / f"{d}.sh").read_bytes() for d in declared)


def test_the_script_document_runs_no_script_the_stack_did_not_declare(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    """Whoever may send the document (the build's step role) cannot run another script:
    Systems Manager refuses a digest that is not one of the document's allowed values."""
    w, node, _ = prepared
    w.cloudformation.deploy(template)
    (name,) = [n for n in w.cloudformation.documents if n.startswith(SCRIPT_DOCUMENT)]
    with pytest.raises(ClientError) as refused:
        w.clients.ssm.send_command(
            DocumentName=name,
            InstanceIds=[node.node_id],
            Parameters={
                "purpose": ["prepare"],
                "scriptKey": ["0" * 64 + ".sh"],
                "sha256": ["0" * 64],
                "timeoutSeconds": ["600"],
            },
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameters"


def test_a_failing_step_fails_the_build_with_its_name_and_the_archive_but_no_output(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    w, node, foreign = prepared
    node.outcome = (
        "Failed",
        "==> bakery step: patch\nHit:1 http://archive.ubuntu.com jammy InRelease\n",
        "E: Failed to fetch https://builder:hunter2@repo.example/x\n"
        "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n"
        "==> bakery failed: patch (exit 100)\n",
        100,
    )
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(template)
    message = str(failure.value)
    assert "persona office" in message
    assert "in step 'patch (exit 100)' with exit code 100" in message
    assert "full output: s3://bakery-evidence-fake/output/office/office-" in message
    # The output itself never reaches the stack event: it may hold what must not.
    assert "Failed to fetch" not in message
    assert "hunter2" not in message and "wJalrXUtnFEMIK7MDENG" not in message
    assert not [i for i in w.fake.images.values() if i.name.startswith("office-")]
    assert w.fake.workspaces[TEMPLATE].reboots == 0
    invariants.check(w, foreign=foreign, failure=message, persona="office")


def test_a_command_that_times_out_fails_the_build(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    w, node, foreign = prepared
    node.outcome = ("TimedOut", "==> bakery step: install\n", "", -1)
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(template)
    message = str(failure.value)
    assert "ended ExecutionTimedOut in step 'install'" in message
    assert w.fake.count("CreateWorkspaceImage") == 1  # the developer's image only (rolled back)
    invariants.check(w, foreign=foreign, failure=message, persona="office")


def test_an_offline_node_is_waited_for_within_the_bound(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    w, node, foreign = prepared
    node.ping = "ConnectionLost"
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(template)
    message = str(failure.value)
    assert "did not finish within its bound of 21600 s while preparing the template" in message
    assert w.ssm.count("SendCommand") == 0
    invariants.check(w, foreign=foreign, failure=message, persona="office")


def test_a_node_that_comes_back_online_is_prepared(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    w, node, foreign = prepared
    node.ping = "ConnectionLost"
    original = w.ssm._op_DescribeInstanceInformation
    seen = [0]

    def back_after_three(params: dict[str, Any]) -> dict[str, Any]:
        seen[0] += 1
        if seen[0] == 3:
            node.ping = "Online"
        return original(params)

    w.ssm._op_DescribeInstanceInformation = back_after_three  # type: ignore[method-assign]
    w.cloudformation.deploy(template)
    assert w.ssm.count("SendCommand") == 4  # preparation, marker, inventory, seal
    invariants.check(w, foreign=foreign, deployed=template)


def test_a_marker_that_does_not_match_stops_the_build_before_the_image(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    w, node, foreign = prepared
    node.recipe_override = "0" * 64  # the template changed after its preparation
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(template)
    message = str(failure.value)
    assert "carries recipe 000000000000, not this build's" in message
    assert "No image was taken" in message
    assert not [i for i in w.fake.images.values() if i.name.startswith("office-")]
    invariants.check(w, foreign=foreign, failure=message, persona="office")


@pytest.mark.parametrize("case", ["unregistered", "another-machine"])
def test_a_node_that_is_not_the_template_is_refused(template: dict[str, Any], case: str) -> None:
    with world(template) as w:
        if case == "another-machine":
            w.ssm.add_node("ws-dev0template1")  # mi-...01 is the developer's WorkSpace
            w.fake.workspaces["ws-dev0template1"].ip_address = "10.0.1.99"
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(template)
        message = str(failure.value)
        expected = {
            "unregistered": f"managed node {NODE} is not registered with Systems Manager",
            "another-machine": f"but template WorkSpace {TEMPLATE} has 10.0.1.20",
        }[case]
        assert expected in message
        assert w.ssm.count("SendCommand") == 0


def _stack(context: dict[str, Any] | None = None) -> ImageBakeryStack:
    app = cdk.App(context=context or {})
    return ImageBakeryStack(
        app, "S", tag_defaults={"Project": "p", "CostCenter": "c", "Stage": "dev"}
    )


def _persona(stack: ImageBakeryStack, name: str, template: str, **props: Any) -> None:
    stack.add_persona(
        name.title(),
        name=name,
        design=ImageDesign.FULLY_BAKED,
        image_version="1",
        template_workspace_id=template,
        tags={"Role": "r", "Confidentiality": "internal"},
        **props,
    )


def test_a_template_prepared_in_the_build_serves_one_persona() -> None:
    stack = _stack()
    _persona(
        stack,
        "one",
        "ws-shared0001",
        preparation=ImagePreparation(),
        build=TemplateBuild(managed_node_id=NODE),
    )
    with pytest.raises(BakeryValidationError) as error:
        _persona(stack, "two", "ws-shared0001")
    assert "template_workspace_id" in error.value.fields
    assert "a template prepared in the build serves one persona" in str(error.value)


def test_a_team_can_forbid_templates_prepared_by_hand() -> None:
    stack = _stack({"workspaces-image-bakery:require-automated-preparation": "true"})
    _persona(
        stack,
        "auto",
        "ws-auto00001",
        preparation=ImagePreparation(),
        build=TemplateBuild(managed_node_id=NODE),
    )
    with pytest.raises(BakeryValidationError) as error:
        _persona(stack, "manual", "ws-manual0001")
    assert error.value.fields == ["build.managed_node_id"]
    assert "requires every template to be prepared in the build" in str(error.value)


def test_a_managed_node_needs_a_preparation() -> None:
    with pytest.raises(BakeryValidationError) as error:
        _persona(_stack(), "p", "ws-abcdefgh1", build=TemplateBuild(managed_node_id=NODE))
    assert error.value.fields == ["build.managed_node_id"]


def test_send_command_is_limited_to_the_declared_nodes_and_documents(
    template: dict[str, Any],
) -> None:
    statements = [
        s
        for r in template["Resources"].values()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if "ssm:SendCommand" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    (statement,) = statements
    resources = [
        "".join(p if isinstance(p, str) else str(p) for p in r["Fn::Join"][1])
        for r in statement["Resource"]
    ]
    assert sum(f"managed-instance/{NODE}" in r for r in resources) == 1
    # The stack's script document, the marker's and the inventory's.
    assert sum(":document/" in r for r in resources) == 3
    assert not any(r.endswith("*") for r in resources)


def test_the_node_role_reads_the_declared_scripts_and_lists_no_other_prefix(
    template: dict[str, Any],
) -> None:
    """aws:downloadContent downloads with the node's credentials: each script's object, and
    a listing under the script's key (the agent lists "<key>/" first, and fails when it may
    not), which holds no objects."""
    statements = [
        s
        for r in template["Resources"].values()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        and "TemplateNodeRole" in json.dumps(r["Properties"].get("Roles", []))
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    (get,) = [s for s in statements if s["Action"] == "s3:GetObject"]
    keys = {
        r["Properties"][k]["Key"]
        for r in template["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE
        for k in ("PreparationScript", "ValidationScript", "SealScript")
        if k in r["Properties"]
    }
    objects = {json.dumps(r).split("/")[-1].rstrip('"]}') for r in get["Resource"]}
    assert objects == keys
    (listing,) = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["*.sh/"]}}


def test_the_script_and_the_runtime_agree_on_the_contract() -> None:
    """The markers and the version file the script writes are the ones the runtime reads."""
    from workspaces_image_bakery import preparation

    assert preparation.VERSION_FILE == contract.VERSION_FILE
    assert preparation.STEP_MARKER == contract.STEP_MARKER
    assert preparation.FAILED_MARKER == contract.FAILED_MARKER
    script = preparation.render_script(
        ImagePreparation(), persona="p", version="1", fingerprint="f" * 64
    )
    assert f"{contract.MARKER_LINE_PREFIX}{'f' * 64}" in script.splitlines()


def test_the_stack_creates_the_role_a_template_registers_with(template: dict[str, Any]) -> None:
    roles = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service")
        == "ssm.amazonaws.com"
    ]
    (role,) = roles
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    # Least privilege: no managed policy, no Parameter Store reads for root on the template.
    assert "ManagedPolicyArns" not in role["Properties"]
    logical = next(k for k, r in template["Resources"].items() if r is role)
    actions = {
        a
        for r in template["Resources"].values()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        and {"Ref": logical} in r["Properties"].get("Roles", [])
        for st in r["Properties"]["PolicyDocument"]["Statement"]
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }
    assert {"ssm:UpdateInstanceInformation", "ec2messages:GetMessages"} <= actions
    assert not any(a.startswith(("ssm:GetParameter", "ssm:PutInventory")) for a in actions)
    assert "TemplateNodeRoleName" in template["Outputs"]


def test_the_scripts_of_one_stack_fit_cloudformations_template_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workspaces_image_bakery.image_build import build_runtime

    stack = _stack()
    _persona(
        stack,
        "one",
        "ws-one000001",
        preparation=ImagePreparation(),
        build=TemplateBuild(managed_node_id=NODE),
    )
    size = build_runtime.BuildRuntime.of(stack)._template_bytes
    monkeypatch.setattr(build_runtime, "TEMPLATE_LIMIT_BYTES", size + 10_000)
    with pytest.raises(BakeryValidationError) as error:
        _persona(
            stack,
            "two",
            "ws-two000001",
            preparation=ImagePreparation(),
            build=TemplateBuild(managed_node_id=NODE),
        )
    assert "CloudFormation's template limit" in str(error.value)


@pytest.mark.parametrize("count", [1, 12])
def test_the_template_estimate_stays_above_the_real_size(tmp_path: Any, count: int) -> None:
    """The synth-time estimate of the template's size never falls below what CDK writes,
    so the 1 MB check fires before CloudFormation would refuse the template."""
    from workspaces_image_bakery.image_build import build_runtime

    stack = _stack(
        {"workspaces-image-bakery:review": "false", "workspaces-image-bakery:image-quota": "1000"}
    )
    for index in range(count):
        _persona(
            stack,
            f"p{index}",
            f"ws-size{index:05d}",
            preparation=ImagePreparation(install_steps=["apt-get install -y x"]),
            build=TemplateBuild(managed_node_id=f"mi-{index:017d}"),
        )
    written = len(json.dumps(cdk.assertions.Template.from_stack(stack).to_json(), indent=1))
    estimate = build_runtime.BuildRuntime.of(stack)._template_bytes
    assert written <= estimate <= written * 1.5, (written, estimate)


def test_a_node_lost_mid_command_fails_in_minutes_naming_it_and_cancels_the_command(
    template: dict[str, Any],
) -> None:
    """A node that drops off while its command runs is not waited for the whole bound (6 h):
    once it has been unreachable for 10 minutes, the build cancels the command and fails,
    naming the node; no image is taken."""
    from bakery_runtime.image_build.preparation import NODE_LOST_SECONDS

    with world(template) as w:
        node = w.ssm.add_node(TEMPLATE)
        node.drop_after = "prepare"
        with pytest.raises(DeployError) as failed:
            w.cloudformation.deploy(template)
        (prepare,) = [p for op, p in w.ssm.calls if op == "SendCommand"]
        (cancel,) = [p for op, p in w.ssm.calls if op == "CancelCommand"]
        office = [i for i in w.fake.images.values() if i.name.startswith("office-")]
    message = str(failed.value)
    assert f"managed node {NODE} of template WorkSpace {TEMPLATE} is ConnectionLost" in message
    assert f"more than {NODE_LOST_SECONDS // 60} minutes) during the preparation" in message
    assert f"command {w.ssm.cancelled[0]} was cancelled" in message
    assert cancel["InstanceIds"] == [NODE] and office == []
    assert prepare["Parameters"]["purpose"] == ["prepare"]


def test_a_build_stopped_by_cloudformation_cancels_its_command(
    template: dict[str, Any],
) -> None:
    """A rollback or delete that stops a build mid-preparation cancels its Run Command: a
    quick redeploy never prepares the template beside it."""
    with world(template) as w:
        w.ssm.add_node(TEMPLATE)
        cfn = w.cloudformation
        original = cfn.run_builds
        cfn.run_builds = lambda pause_at=None: original("WaitForPreparation")  # type: ignore[method-assign]
        with pytest.raises(DeployError):
            cfn.deploy(template)  # the build is still preparing: the WaitCondition times out
        cfn.run_builds = original  # type: ignore[method-assign]
        sent = [p for op, p in w.ssm.calls if op == "SendCommand"]
        cancelled = list(w.ssm.cancelled)
    assert len(sent) == 1 and len(cancelled) == 1


def test_the_first_build_deletes_the_activation_its_node_registered_with(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    """The activation code is a credential until it expires: once the node it registered is
    online and the build uses it, the activation is deleted (the node stays registered), and
    a later build finds it gone without failing."""
    w, node, _ = prepared
    w.cloudformation.deploy(template)
    assert w.ssm.deleted_activations == [node.activation_id]
    w.cloudformation.deploy(two_personas(office_node=NODE, office_version="1.1.0"))
    assert w.ssm.deleted_activations == [node.activation_id]
    deletes = [p for op, p in w.ssm.calls if op == "DeleteActivation"]
    assert len(deletes) == 2  # the second found it gone, and the build went on


def test_properties_of_a_0_4_0_template_still_parse_for_a_rollback(
    template: dict[str, Any],
) -> None:
    """Rolling back an upgrade, CloudFormation sends the image resource its 0.4.0 properties
    (a per-persona PreparationDocument, ValidationDocument, SealDocument) while the functions
    still run this version: they parse, as a template the rollback does not build."""
    from bakery_runtime.core.properties import ImageProperties

    (office,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE and r["Properties"]["Persona"] == "office"
    ]
    old = {
        k: v
        for k, v in office.items()
        if k not in ("PreparationScript", "ValidationScript", "SealScript", "ServiceToken")
    }
    old.update(
        {
            "PreparationDocument": "Lifecycle-OfficeImagePreparationDocument-abc",
            "SealDocument": "Lifecycle-OfficeImageSealDocument-abc",
            "WaitHandle": "https://cloudformation-waitcondition-us-east-1.s3.amazonaws.com/x",
            "Tags": [],
        }
    )
    parsed = ImageProperties.parse(old)
    assert parsed.preparation_script is None and parsed.seal_script is None
    assert parsed.managed_node_id is None  # a rollback builds nothing


def test_the_preparations_own_checks_run_again_on_the_rebooted_template() -> None:
    """`validation_steps` run in the script, before the reboot, and again with the build's
    validation commands on the rebooted template, right before the image: what the image
    holds is what they checked. The script is not part of the recipe (no rebuild)."""
    from workspaces_image_bakery.image_build.run_command import SCRIPT_CACHE

    stack = _stack({"workspaces-image-bakery:review": "false"})
    _persona(
        stack,
        "one",
        "ws-valid00001",
        preparation=ImagePreparation(validation_steps=["git --version"]),
        build=TemplateBuild(managed_node_id=NODE, validation_commands=["test -x /usr/bin/git"]),
    )
    _persona(
        stack,
        "two",
        "ws-valid00002",
        preparation=ImagePreparation(validation_steps=["python3 --version"]),
        build=TemplateBuild(managed_node_id="mi-00000000000000002"),
    )
    images = {
        r["Properties"]["Persona"]: r["Properties"]
        for r in cdk.assertions.Template.from_stack(stack).to_json()["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE
    }
    one = (SCRIPT_CACHE / f"{images['one'][contract.VALIDATION_SCRIPT]['Sha256']}.sh").read_text()
    assert one.index("check 1: git --version") < one.index("check 2: test -x /usr/bin/git")
    two = (SCRIPT_CACHE / f"{images['two'][contract.VALIDATION_SCRIPT]['Sha256']}.sh").read_text()
    assert "check 1: python3 --version" in two and "check 2" not in two
    assert "git --version" not in json.dumps(images["one"]["Recipe"])


def test_a_baked_application_the_inventory_does_not_list_fails_before_the_image(
    prepared: tuple[World, Node, dict[str, Any]], template: dict[str, Any]
) -> None:
    """What is declared is what is delivered: the office persona bakes libreoffice, and a
    template whose inventory lists no such package is not imaged (the Software tag would
    name it)."""
    from .fakes.ssm_service import DEFAULT_PACKAGES

    w, node, foreign = prepared
    node.packages = "".join(
        line + "\n" for line in DEFAULT_PACKAGES.splitlines() if "libreoffice" not in line
    )
    with pytest.raises(DeployError) as failure:
        w.cloudformation.deploy(template)
    message = str(failure.value)
    assert "declared baked application(s) not installed on the template" in message
    assert "libreoffice 7.6" in message and "application_packages" in message
    assert "No image was taken" in message
    assert not [i for i in w.fake.images.values() if i.name.startswith("office-")]
    invariants.check(w, foreign=foreign, failure=message, persona="office")


def test_application_packages_name_a_baked_applications_package() -> None:
    """A label that does not name its package ("office suite") is found by the package
    declared for it; a mapping for an application that is not baked, or a malformed
    package name, is refused at synth naming the field."""
    from bakery_runtime.evidence import as_built
    from bakery_runtime.evidence.inventory import Inventory

    expected = as_built.Expectations.from_json(
        {
            "baked_applications": ["office suite", "git 2.47"],
            "application_packages": {"office suite": "libreoffice"},
        }
    )
    inventory = Inventory(
        os_id="ubuntu",
        os_version="22.04",
        family="deb",
        packages_text="installed\tlibreoffice\t1:7.6\tamd64\ninstalled\tgit\t1:2.47\tamd64\n",
    )
    assert as_built.missing_baked(expected, inventory) == []
    without = as_built.Expectations.from_json({"baked_applications": ["office suite"]})
    assert as_built.missing_baked(without, inventory) == ["office suite"]
    for packages, field in (
        ({"not baked": "x"}, "preparation.application_packages[not baked]"),
        ({"libreoffice 7.6": "Libre Office"}, "preparation.application_packages[libreoffice 7.6]"),
    ):
        with pytest.raises(BakeryValidationError) as error:
            _persona(
                _stack(),
                "office",
                "ws-off0template1",
                baked_applications=["libreoffice 7.6"],
                preparation=ImagePreparation(application_packages=packages),
            )
        assert f"{field}=" in str(error.value), str(error.value)
