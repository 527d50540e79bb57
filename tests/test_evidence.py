"""The as-built evidence: the inventory document run for real on this machine, the as-built
checklist scored from what a template holds (not from what the recipe says), the record's
digest checked against the image, and the evidence store's policy in the template."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from bakery_runtime.core import contract
from bakery_runtime.core.errors import BuildFailed
from bakery_runtime.evidence import as_built, record, store
from bakery_runtime.evidence.inventory import (
    INVENTORY_COMMANDS,
    LAUNCH_FACTS_FILE,
    Inventory,
    parse_inventory_output,
)
from bakery_runtime.evidence.sbom import build_sbom, parse_inventory
from moto import mock_aws

from .harness import cyclonedx_schema
from .harness.stacks import two_personas

LOG_AGENT = ("cloudwatch", "log-forwarding", "amazon-cloudwatch-agent.service")
PUPPET = ("puppet-agent", "configuration-management", "puppet.service")


def _inventory(
    units: dict[str, str] | None = None,
    files: dict[str, bool] | None = None,
    packages: str = "installed\tbash\t5.1-6ubuntu1\tamd64\n",
) -> Inventory:
    return Inventory("ubuntu", "22.04", "deb", packages, units or {}, files or {})


def _items(expected: as_built.Expectations, found: as_built.Evidence) -> dict[int, as_built.Item]:
    return {i.number: i for i in as_built.assess(expected, found)}


PREPARED = ("patch", "install", "agents", "clean-down")


@cyclonedx_schema.VALIDATES
def test_the_inventory_document_runs_on_a_real_debian_system() -> None:
    """The document's commands, run by bash on this Debian machine, print what the parser
    reads, and the packages make an SBOM that validates against CycloneDX 1.6. A licence file
    planted under /var/lib (where this machine lets the test write) is listed by path."""
    planted = Path(tempfile.mkdtemp(prefix="bakery-test-", dir="/var/lib")) / "network.lic"
    planted.write_text("SERVER licence.example.com 0 27000\n")
    try:
        result = subprocess.run(
            ["bash", "-c", "\n".join(INVENTORY_COMMANDS)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        shutil.rmtree(planted.parent)
    found = parse_inventory_output(result.stdout)
    assert str(planted) in found.licence_files
    assert found.family == "deb" and found.os_id
    packages = parse_inventory(found.packages_text, found.family)
    assert any(p.name == "bash" for p in packages)
    assert found.units, "systemctl lists the unit files"
    sbom = build_sbom(
        packages,
        image_name="office-1.0.0-abcdef12",
        persona="office",
        os_id=found.os_id,
        os_version=found.os_version,
        family=found.family,
        timestamp=datetime(2026, 12, 2, tzinfo=UTC),
    )
    assert cyclonedx_schema.errors(sbom) == []


def test_an_inventory_without_its_end_line_is_refused() -> None:
    """A truncated output (a command cut short) is never read as a complete inventory."""
    with pytest.raises(ValueError, match="end"):
        parse_inventory_output(
            "==> bakery inventory: os ubuntu 22.04\n==> bakery inventory: family deb\n"
        )


def test_a_log_agent_whose_check_passes_but_is_never_enabled_does_not_score_5() -> None:
    """Item 17: the agent's check may be `true`; what counts is its unit and configuration
    on the rebooted template."""
    expected = as_built.Expectations(agents=(LOG_AGENT,))
    disabled = _items(
        expected,
        as_built.Evidence(PREPARED, 0, _inventory({"amazon-cloudwatch-agent.service": "disabled"})),
    )[17]
    assert disabled.score == 1 and "disabled" in disabled.evidence
    unconfigured = _items(
        expected,
        as_built.Evidence(PREPARED, 0, _inventory({"amazon-cloudwatch-agent.service": "enabled"})),
    )[17]
    assert unconfigured.score == 2 and "no configuration" in unconfigured.evidence
    config = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
    forwarding = _items(
        expected,
        as_built.Evidence(
            PREPARED,
            0,
            _inventory({"amazon-cloudwatch-agent.service": "enabled"}, {config: True}),
        ),
    )[17]
    assert forwarding.score == 5 and "configuration present" in forwarding.evidence


def test_a_persona_validated_by_its_validation_commands_scores_item_10() -> None:
    """Item 10 reads the validation's result on the rebooted template."""
    validated = _items(as_built.Expectations(validation_commands=2), as_built.Evidence(PREPARED, 2))
    assert validated[10].score == 5 and "2 validation command(s) passed" in validated[10].evidence
    unvalidated = _items(as_built.Expectations(), as_built.Evidence(PREPARED, 0))
    assert unvalidated[10].score == 3


def test_a_zero_image_with_applications_in_it_never_scores_5_on_item_2() -> None:
    """Item 2 checks the declared baked applications against the inventory and never claims
    that nothing else is installed (the OS base set is not known to the build)."""
    packages = "".join(
        f"installed\t{name}\t1.0\tamd64\n" for name in ("bash", "firefox", "gimp", "vlc")
    )
    zero = _items(
        as_built.Expectations(design="zero"),
        as_built.Evidence(PREPARED, 0, _inventory(packages=packages)),
    )
    assert zero[2].score is not None and zero[2].score < 5
    missing = _items(
        as_built.Expectations(baked_applications=("libreoffice",)),
        as_built.Evidence(PREPARED, 0, _inventory(packages=packages)),
    )
    assert missing[2].score == 1 and "libreoffice" in missing[2].evidence


def test_a_configuration_management_agent_counts_only_when_held_on_the_template() -> None:
    """Item 14: the agent's unit must be masked on the template (it enrols at launch)."""
    held = _items(
        as_built.Expectations(design="thin", agents=(PUPPET,)),
        as_built.Evidence(PREPARED, 0, _inventory({"puppet.service": "masked"})),
    )
    assert held[14].score == 5
    running = _items(
        as_built.Expectations(design="thin", agents=(PUPPET,)),
        as_built.Evidence(PREPARED, 0, _inventory({"puppet.service": "enabled"})),
    )
    assert running[14].score == 2 and "enabled" in running[14].evidence


def test_licence_files_left_on_the_root_volume_fail_item_4() -> None:
    """Item 4 reads the licence files the inventory found on the template, by path only."""
    leaked = replace(_inventory(), licence_files=("/opt/matlab/licenses/network.lic",))
    found = _items(
        as_built.Expectations(licensed_applications=("matlab",)),
        as_built.Evidence(PREPARED, 0, leaked),
    )
    assert found[4].score == 1 and "/opt/matlab/licenses/network.lic" in found[4].evidence
    clean = _items(
        as_built.Expectations(licensed_applications=("matlab",)),
        as_built.Evidence(PREPARED, 0, _inventory()),
    )
    assert clean[4].score == 5 and "referenced outside the image (matlab)" in clean[4].evidence


def test_an_application_meant_for_launch_found_in_the_image_fails_item_6() -> None:
    """Item 6: the image holds its baked applications and none of those meant to arrive at
    launch, matched to packages by label ("firefox esr" is the package firefox-esr)."""
    packages = "".join(
        f"installed\t{name}\t1.0\tamd64\n" for name in ("bash", "firefox-esr", "python3.12")
    )
    inventory = _inventory({"puppet.service": "masked"}, packages=packages)
    discrete = _items(
        as_built.Expectations(
            design="thin",
            baked_applications=("python 3.12", "firefox esr"),
            launch_applications=("libreoffice 7.6",),
            agents=(PUPPET,),
        ),
        as_built.Evidence(PREPARED, 0, inventory),
    )
    assert discrete[6].score == 5 and discrete[2].score == 4
    leaked = _items(
        as_built.Expectations(design="zero", launch_applications=("firefox esr",)),
        as_built.Evidence(PREPARED, 0, inventory),
    )
    assert leaked[6].score == 2 and "firefox esr (firefox-esr)" in leaked[6].evidence


def test_item_7_needs_an_installed_agent_with_something_to_deliver() -> None:
    """Item 7: launch applications need a configuration-management agent on the template."""
    thin = as_built.Expectations(design="thin", launch_applications=("docker-ce",))
    no_agent = _items(thin, as_built.Evidence(PREPARED, 0, _inventory()))
    assert no_agent[7].score == 1
    with_agent = replace(thin, agents=(PUPPET,))
    absent = _items(with_agent, as_built.Evidence(PREPARED, 0, _inventory()))
    assert absent[7].score == 1 and "not on the template" in absent[7].evidence
    held = _items(
        with_agent, as_built.Evidence(PREPARED, 0, _inventory({"puppet.service": "masked"}))
    )
    assert held[7].score == 3 and "launch facts" in held[7].evidence
    handed = _inventory({"puppet.service": "masked"}, {LAUNCH_FACTS_FILE: True})
    assert _items(with_agent, as_built.Evidence(PREPARED, 0, handed))[7].score == 5
    baked = _items(as_built.Expectations(), as_built.Evidence(PREPARED, 0, _inventory()))
    assert baked[7].score == 3


def test_what_the_build_cannot_check_scores_nothing() -> None:
    """A template prepared by hand: no item is scored, and the score is None, not 0 or 5."""
    items = as_built.assess(as_built.Expectations(), as_built.Evidence())
    assert all(i.score is None and i.evidence.startswith("not checked") for i in items)
    assert as_built.score(items) is None


@pytest.fixture
def evidence_bucket(monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="evidence")
        monkeypatch.setenv(contract.ENV_EVIDENCE_BUCKET, "evidence")
        yield s3


def test_a_record_is_read_only_when_its_digest_is_the_images_tag(evidence_bucket: Any) -> None:
    """The runtime refuses a record it did not write: one changed after the fact, or one
    whose image carries another digest, or that names another stack."""
    s3 = evidence_bucket
    owner = "arn:aws:cloudformation:us-east-1:123456789012:stack/S/1"
    data = {"stack": owner, "persona": "office", "image": {"id": "wsi-1", "name": "office-1"}}
    written = record.write(s3, data, None)
    tags = {contract.RECORD_TAG_KEY: written}
    assert record.read_record(s3, "office", "office-1", tags, owner)["image"]["id"] == "wsi-1"
    with pytest.raises(BuildFailed, match="another image"):
        record.read_record(s3, "office", "office-1", tags, owner.replace("S/1", "T/2"))
    forged = json.dumps({**data, "image": {"id": "wsi-evil", "name": "office-1"}})
    s3.put_object(Bucket="evidence", Key=record.record_key("office", "office-1"), Body=forged)
    with pytest.raises(BuildFailed, match="not the one the runtime wrote"):
        record.read_record(s3, "office", "office-1", tags, owner)
    with pytest.raises(BuildFailed, match="no as-built record digest"):
        record.read_record(s3, "office", "office-1", {}, owner)


def test_the_whole_output_is_read_from_the_archive(evidence_bucket: Any) -> None:
    """Every plugin's stdout and stderr, in order, however long."""
    s3 = evidence_bucket
    prefix = store.output_prefix("office", "office-1", "preparation")
    folder = f"{prefix}/cmd-1/mi-00000000000000001/awsrunShellScript/0.awsrunShellScript"
    s3.put_object(Bucket="evidence", Key=f"{folder}/stdout", Body=b"x" * 300_000 + b"\nend")
    s3.put_object(Bucket="evidence", Key=f"{folder}/stderr", Body=b"boom")
    out, err = store.read_output(s3, prefix, "cmd-1", "mi-00000000000000001") or ("", "")
    assert len(out) == 300_004 and out.endswith("end") and err == "boom"
    assert store.read_output(s3, prefix, "cmd-2", "mi-00000000000000001") is None


def test_a_builds_pieces_are_read_from_one_listing_of_its_work(evidence_bucket: Any) -> None:
    """The record's pieces: the execution's work folder listed once, then only the pieces
    the build wrote are read (no GetObject, and no NoSuchKey, for the rest); another
    execution's work and an unknown file in the folder are not among them."""
    s3 = evidence_bucket
    store.put_json(s3, store.work_key("exec-1", "inventory"), {"inventory": "x"})
    store.put_json(s3, store.work_key("exec-1", "seal"), {"items": {}})
    store.put_json(s3, store.work_key("exec-1", "notes"), {"not": "a piece"})
    store.put_json(s3, store.work_key("exec-10", "marker"), {"other": "execution"})
    calls: list[str] = []
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    assert record.pieces(s3, "exec-1") == {"inventory": {"inventory": "x"}, "seal": {"items": {}}}
    assert sorted(calls) == ["GetObject", "GetObject", "ListObjectsV2"]
    calls.clear()
    assert record.pieces(s3, "exec-2") == {}
    assert calls == ["ListObjectsV2"]
    with pytest.raises(BuildFailed, match="execution's name"):
        store.work_folder("a/b")


@pytest.fixture(scope="module")
def prepared_template() -> dict[str, Any]:
    return two_personas(office_node="mi-00000000000000001")


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    document = resource["Properties"].get("PolicyDocument", {})
    statements: list[dict[str, Any]] = document.get("Statement", [])
    return statements


WATCH = "WorkSpacesImageBakeryRuntimeBuildWatch"


def test_only_the_runtime_may_write_records(prepared_template: dict[str, Any]) -> None:
    """The bucket denies writes of records, SBOMs and builds' work to every principal but the
    build's step role and the image resource's role; the template's node role may write
    command output only; the bucket is versioned, encrypted and closed to the public."""
    resources = prepared_template["Resources"]
    (bucket_id,) = [k for k, v in resources.items() if v["Type"] == "AWS::S3::Bucket"]
    bucket = resources[bucket_id]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "BucketEncryption" in bucket
    assert resources[bucket_id]["DeletionPolicy"] == "Retain"
    (policy,) = [v for v in resources.values() if v["Type"] == "AWS::S3::BucketPolicy"]
    (deny,) = [s for s in _statements(policy) if s.get("Sid") == "OnlyTheRuntimeWritesEvidence"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert "s3:PutObject" in deny["Action"]
    allowed = deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    roles = {a["Fn::GetAtt"][0] for a in allowed}
    assert len(roles) == 2 and all("WorkflowStep" in r or "OnEvent" in r for r in roles), roles
    node_roles = [
        k for k, v in resources.items() if v["Type"] == "AWS::IAM::Role" and "TemplateNodeRole" in k
    ]
    assert node_roles and not set(node_roles) & roles
    node_writes = [
        s
        for v in resources.values()
        if v["Type"] == "AWS::IAM::Policy"
        and any(r.get("Ref") in node_roles for r in v["Properties"].get("Roles", []))
        for s in _statements(v)
        if "s3:PutObject" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert node_writes, "the node role archives command output"
    for statement in node_writes:
        text = json.dumps(statement["Resource"])
        assert contract.OUTPUT_PREFIX in text and contract.RECORDS_PREFIX not in text
        # The SSM Agent's upload sets bucket-owner-full-control (store.grant_command_output).
        assert "s3:PutObjectAcl" in statement["Action"], statement
    # Builds' work (each request holds its WaitCondition handle) is read by the runtime's
    # roles only: the step role, the image resource's and the build watch's, which reads
    # the request of a build that ended without reporting (from the bucket it is given).
    (reads,) = [s for s in _statements(policy) if s.get("Sid") == "OnlyTheRuntimeReadsBuildsWork"]
    assert reads["Effect"] == "Deny" and reads["Principal"] == {"AWS": "*"}
    assert reads["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert contract.WORK_PREFIX in json.dumps(reads["Resource"])
    readers = {a["Fn::GetAtt"][0] for a in reads["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]}
    (watch,) = [
        v
        for k, v in resources.items()
        if v["Type"] == "AWS::Lambda::Function" and k.startswith(WATCH)
    ]
    assert readers == roles | {watch["Properties"]["Role"]["Fn::GetAtt"][0]}
    assert watch["Properties"]["Environment"]["Variables"][contract.ENV_EVIDENCE_BUCKET] == {
        "Ref": bucket_id
    }


def test_the_build_gets_no_evidence_from_its_input(prepared_template: dict[str, Any]) -> None:
    """Every step learns its execution from the context object ($$), never from the input,
    so a hand-started execution cannot point a build at another build's work."""
    machine = next(
        v
        for v in prepared_template["Resources"].values()
        if v["Type"] == "AWS::StepFunctions::StateMachine"
    )
    body = machine["Properties"]["DefinitionString"]
    text = json.dumps(body)
    assert '\\"Execution.$\\":\\"$$.Execution.Name\\"' in text
    assert "$.Execution" not in text.replace("$$.Execution", "")


def test_the_seal_and_the_runtime_read_the_same_markers() -> None:
    """The seal script's markers and settling time are what the runtime parses and waits."""
    from bakery_runtime.image_build.preparation import read_seal

    from workspaces_image_bakery.preparation import seal

    assert (seal.SEAL_MARKER, seal.SEALED_MARKER) == (contract.SEAL_MARKER, contract.SEALED_MARKER)
    assert seal.SEAL_SETTLED_SECONDS == contract.SEAL_SETTLED_SECONDS
    printed = (
        f"{seal.SEAL_MARKER}ssh-host-keys absent\n"
        f"{seal.SEAL_MARKER}ssm-registration deferred\n"
        f"{seal.SEALED_OK}\n"
    )
    assert read_seal(printed) == (
        {"ssh-host-keys": "absent", "ssm-registration": "deferred"},
        True,
    )
    left = f"{seal.SEAL_MARKER}machine-id present /etc/machine-id\n{seal.SEALED_FAILED}machine-id\n"
    assert read_seal(left) == ({"machine-id": "present /etc/machine-id"}, False)


def test_a_failure_deep_in_long_output_names_its_step_and_the_archive(
    prepared_template: dict[str, Any],
) -> None:
    """A failure in the fourth of six steps, after 200 KB of output: GetCommandInvocation
    returns only the first 24,000 characters (the third step's noise), but the build reads
    the archive and names the fourth step, with the pointer to the whole output."""
    from .harness.cloudformation import DeployError
    from .harness.world import world

    steps = ["patch", "install", "agent:puppet-agent", "check-agent:puppet-agent"]
    noise = "".join(f"Get:{n} http://archive.ubuntu.com jammy/main pkg-{n}\n" for n in range(4000))
    stdout = "".join(f"==> bakery step: {s}\n" + (noise if s == "install" else "") for s in steps)
    assert len(stdout) > 200_000 and stdout.index(steps[3]) > 24_000
    with world(prepared_template) as w:
        node = w.ssm.add_node("ws-off0template1")
        warnings = "W: apt-key is deprecated; manage keyring files in trusted.gpg.d\n" * 200
        assert len(warnings) > 8_000  # stderr's marker is past what the API returns, too
        node.outcome = (
            "Failed",
            stdout,
            warnings + "==> bakery failed: check-agent:puppet-agent (exit 3)\n",
            3,
        )
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(prepared_template)
    message = str(failure.value)
    assert "in step 'check-agent:puppet-agent (exit 3)' with exit code 3" in message
    assert "full output: s3://bakery-evidence-fake/output/office/" in message
    assert "/preparation/" in message and "pkg-" not in message


def test_report_shows_what_two_builds_did_and_their_package_diff(
    prepared_template: dict[str, Any], tmp_path: Path
) -> None:
    """A second build with a changed recipe: `report` shows the newest image's record (steps,
    seal, as-built checklist, SBOM) and the packages changed since the previous image; the
    review's as-built section shows the served image's checklist beside the declared one."""
    from click.testing import CliRunner

    from workspaces_image_bakery.operations.cli import Aws, cli
    from workspaces_image_bakery.review.as_built import declared_entry, write_declared

    from .harness.world import world

    second = two_personas(office_node="mi-00000000000000001", office_version="1.1.0")
    with world(prepared_template) as w:
        node = w.ssm.add_node("ws-off0template1")
        w.cloudformation.deploy(prepared_template)
        node.packages = (
            node.packages.replace("5.1-6ubuntu1.1", "5.1-6ubuntu1.2")
            + "installed\tjq\t1.6-2.1ubuntu3\tamd64\n"
        )
        w.cloudformation.deploy(second)
        aws = Aws(
            workspaces=w.clients.workspaces,
            cloudformation=w.clients.cloudformation,
            s3=w.clients.s3,
        )
        result = CliRunner().invoke(cli, ["report", "office", "--output", "json"], obj=aws)
        table = CliRunner().invoke(cli, ["report", "office"], obj=aws)
        stack = w.cloudformation.stack_id.split("/")[1]
        (tmp_path / "preparation").mkdir()
        write_declared(
            tmp_path / "preparation",
            {
                "office": declared_entry(stack, "office-1.2.0-x", 3.9, {2: 4, 10: 5, 17: None}),
                "developer": declared_entry(stack, "developer-1.0.0-x", 4.5, {2: 5}),
                "elsewhere": declared_entry("NotDeployed", "elsewhere-1.0.0-x", 3.0, {}),
            },
        )
        as_built_args = ["as-built", "--assembly", str(tmp_path)]
        section = CliRunner().invoke(cli, as_built_args, obj=aws)
        # A record changed after the runtime wrote it is refused, never shown.
        newest = json.loads(result.stdout)["reports"][0]["image"]["name"]
        key = f"records/office/{newest}.json"
        body = json.loads(
            w.clients.s3.get_object(Bucket="bakery-evidence-fake", Key=key)["Body"].read()
        )
        body["assessment"]["score"] = 5.0
        w.clients.s3.put_object(Bucket="bakery-evidence-fake", Key=key, Body=json.dumps(body))
        tampered = CliRunner().invoke(cli, ["report", "office", "--output", "json"], obj=aws)
        tampered_section = CliRunner().invoke(cli, as_built_args, obj=aws)
    assert section.exit_code == 0, section.output
    rows = {line.split(" | ")[0]: line for line in section.stdout.splitlines() if " | " in line}
    assert "| 3.9/5 | " in rows["| office"] and "(office-1.1.0-" in rows["| office"]
    assert rows["| office"].endswith("| 1 added, 1 upgraded |")
    assert "stack NotDeployed not read" in rows["| elsewhere"]
    assert (
        "| 10 | 5/5 | " in section.stdout
        and "- bash 5.1-6ubuntu1.1 -> 5.1-6ubuntu1.2" in section.stdout
    )
    # Personas with package changes lead the table.
    assert section.stdout.index("| office |") < section.stdout.index("| developer |")
    assert "not shown: the record of image office-1.1.0-" in tampered_section.stdout
    assert tampered.exit_code == 3
    (refused,) = json.loads(tampered.stdout)["reports"]
    assert "record" not in refused and "not the one its tag names" in refused["refused"][0]
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["reports"]
    assert report["image"]["name"].startswith("office-1.1.0-") and report["refused"] == []
    assert report["previous_image"].startswith("office-1.0.0-")
    record_ = report["record"]
    assert record_["managed_node_id"] == "mi-00000000000000001"
    assert record_["seal"]["ssm-registration"] == "deferred"
    assert record_["sbom"].startswith("s3://bakery-evidence-fake/sboms/office/office-1.1.0-")
    items = {i["number"]: i for i in record_["checklist"]}
    assert items[15]["score"] == 4 and "not observed" in items[15]["evidence"]
    diff = report["package_diff"]
    assert [a[0] for a in diff["added"]] == ["jq"]
    assert [(u[0], u[2], u[3]) for u in diff["upgraded"]] == [
        ("bash", "5.1-6ubuntu1.1", "5.1-6ubuntu1.2")
    ]
    assert table.exit_code == 0 and "bash 5.1-6ubuntu1.1 -> 5.1-6ubuntu1.2" in table.stdout


def test_an_image_planted_under_the_builds_name_is_never_adopted(
    prepared_template: dict[str, Any],
) -> None:
    """Someone made an image of another WorkSpace under the name the next build will use and
    tagged it as this stack's (as a hand-started execution could): the real build refuses to
    adopt it, since neither its execution tag nor a runtime-written record says it built it."""
    from .fakes.workspaces_service import Image
    from .harness.cloudformation import DeployError
    from .harness.world import world

    name = next(
        r["Properties"]["ImageName"]
        for r in prepared_template["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE and r["Properties"]["Persona"] == "office"
    )
    with world(prepared_template) as w:
        w.ssm.add_node("ws-off0template1")
        planted = Image("wsi-000000666p", name, "planted", "ws-other0template")
        planted.state = "AVAILABLE"
        w.fake.images[planted.image_id] = planted
        w.fake.tags[planted.image_id] = {
            contract.OWNER_TAG_KEY: w.cloudformation.stack_id,
            contract.PERSONA_TAG_KEY: "office",
            contract.SOURCE_TAG_KEY: "ws-off0template1",  # tags are only labels
            contract.EXECUTION_TAG_KEY: "a-guessed-execution",
        }
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(prepared_template)
        bound = [b.image_id for b in w.fake.bundles.values()]
    assert f"image {planted.image_id} is named {name}" in str(failure.value)
    assert "it is not adopted" in str(failure.value)
    assert planted.image_id not in bound


def test_the_image_resource_carries_what_the_build_checks(
    prepared_template: dict[str, Any],
) -> None:
    """The persona's design, baked applications and agents reach the image resource's
    Expectations property, which the as-built checklist scores against."""
    expectations = {
        r["Properties"]["Persona"]: json.loads(r["Properties"][contract.EXPECTATIONS])
        for r in prepared_template["Resources"].values()
        if r["Type"] == contract.IMAGE_RESOURCE_TYPE
    }
    assert expectations["office"]["design"] == "fully-baked"
    assert expectations["office"]["baked_applications"] == ["libreoffice 7.6"]
    assert expectations["developer"]["design"] == "thin"
    assert expectations["office"]["checklist_minimum"] is None
    assert as_built.Expectations.from_json(expectations["office"]).design == "fully-baked"


def test_the_checklist_minimum_gates_the_as_built_score_before_the_image() -> None:
    """With checklist-minimum, a build whose as-built items score below it fails before
    CreateWorkspaceImage, naming the items; the sealed template is rebooted so it gets its
    registration back for the next build."""
    from .harness.cloudformation import DeployError
    from .harness.world import world

    gated = two_personas(
        office_node="mi-00000000000000001",
        # The declared (synth-time) gate passes at 2.5; the as-built one does not.
        context={"workspaces-image-bakery:checklist-minimum": "2.5"},
    )
    with world(gated) as w:
        node = w.ssm.add_node("ws-off0template1")
        with pytest.raises(DeployError) as failure:
            w.cloudformation.deploy(gated)
        office_images = [i for i in w.fake.images.values() if i.name.startswith("office-")]
        reboots = w.fake.workspaces["ws-off0template1"].reboots
        failed = w.monitoring.detail(contract.DETAIL_TYPE_FAILED)
    assert "the as-built checklist" in str(failure.value)
    # Each build's end is published with its reason: the office build names its low items;
    # the developer's template is prepared by hand, so nothing could be checked.
    reasons = {d["persona"]: d["reason"] for d in failed}
    assert "the as-built checklist scores" in reasons["office"]
    assert "below the minimum 2.5" in reasons["office"]
    assert "item 17 scored 1: no log-forwarding agent declared" in reasons["office"]
    assert "no checked item" in reasons["developer"]
    assert "No image was taken" in reasons["office"] and office_images == []
    assert node.seals == 1 and reboots == 2  # after the preparation, and after the failure


def test_the_script_writes_the_launch_facts_where_the_inventory_looks() -> None:
    from workspaces_image_bakery.preparation import script

    assert script.LAUNCH_FACTS_FILE == LAUNCH_FACTS_FILE
    assert f" {LAUNCH_FACTS_FILE} " in " ".join(INVENTORY_COMMANDS) + " "
