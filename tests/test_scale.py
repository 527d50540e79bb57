"""Adding a persona adds 4 resources and 19 jsii round trips (26 prepared in the build); a
stack with its first persona (the shared runtime) costs 284; 50 personas (the bundle quota)
fit one stack; importing the library loads neither cdk-nag, nor detect-secrets, nor the CDK
modules of unused features."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from workspaces_image_bakery import ImageDesign, ImagePreparation, Release, TemplateBuild

from .harness.fresh_process import last_line
from .harness.jsii_calls import jsii_calls
from .harness.stacks import SCALE_CONTEXT, many_personas, many_personas_stack

CLOUDFORMATION_RESOURCE_LIMIT = 500
PER_PERSONA = (
    "Custom::WorkSpacesImage",
    "Custom::WorkSpacesBundle",
    "AWS::CloudFormation::WaitCondition",
    "AWS::CloudFormation::WaitConditionHandle",
)


def _types(template: dict[str, Any]) -> Counter[str]:
    return Counter(r["Type"] for r in template["Resources"].values())


def test_fifty_personas_share_one_runtime() -> None:
    one, two, fifty = (_types(many_personas(n)) for n in (1, 2, 50))
    assert sum(two.values()) - sum(one.values()) == 4
    for kind in PER_PERSONA:
        assert (one[kind], fifty[kind]) == (1, 50), kind
    # The runtime is shared; only its IAM policies grow (one template WorkSpace ARN per
    # persona, and for prepared personas their nodes, documents and scripts), and CDK moves
    # an oversized inline policy into managed policies.
    shared = {k: v for k, v in fifty.items() if k not in PER_PERSONA}
    grown = shared.pop("AWS::IAM::ManagedPolicy") - one.get("AWS::IAM::ManagedPolicy", 0)
    assert 1 <= grown <= 2
    assert shared == {
        k: v for k, v in one.items() if k not in PER_PERSONA and k != "AWS::IAM::ManagedPolicy"
    }
    assert sum(fifty.values()) < CLOUDFORMATION_RESOURCE_LIMIT / 2


# Requests to the jsii kernel (Node.js) that declaring one more persona costs: each is a
# round trip between processes. Deterministic for a CDK version; a change here is a
# performance change (tests/harness/jsii_calls.py counts them; `make bench` prints them).
JSII_CALLS_PER_PERSONA = 19
# The app, the stack, the tagging policy, the build runtime (three functions, the Provider,
# the workflow and its states) and the first persona, once the process has declared one
# stack already (the first also loads assemblies and caches the pseudo-parameter tokens).
# 0.4.0 added the evidence store, the SBOM layer, the inventory document and the inventory,
# seal, assessment, record and restore states (360 before); the request's state, 4 more;
# 0.5 the EvidenceBucketName output, and the watch's read of the stored request (20); the
# FindResumePoint state and its choices (15); the evidence store's write-deny statement
# made to take later writers, such as the patch check's role (3). The workflow written as
# JSON (build_workflow.py) instead of CDK state constructs: 547 -> 279. The build watch's
# s3:ListBucket on the evidence bucket, so a missing key reads as NoSuchKey (5).
JSII_CALLS_FIRST_PERSONA = 284


# A persona prepared in the build adds its two scripts as assets (each one create and its
# object key), their grants and its managed node's; the assets' bucket and the partition
# are asked of jsii once per stack (32 before).
JSII_CALLS_PER_PREPARED_PERSONA = 26


@pytest.mark.parametrize(
    ("in_build", "expected"),
    [(False, JSII_CALLS_PER_PERSONA), (True, JSII_CALLS_PER_PREPARED_PERSONA)],
    ids=["prepared-by-hand", "prepared-in-the-build"],
)
def test_jsii_round_trips_per_persona(in_build: bool, expected: int) -> None:
    stack = many_personas_stack(1, in_build=in_build)
    counts = []
    for index in (1, 2):
        with jsii_calls() as calls:
            stack.add_persona(
                f"More{index}",
                name=f"more-{index}",
                design=ImageDesign.FULLY_BAKED,
                image_version="1.0.0",
                template_workspace_id=f"ws-more{index:05d}",
                baked_applications=["firefox"],
                preparation=(
                    ImagePreparation(install_steps=["apt-get install -y firefox-esr"])
                    if in_build
                    else None
                ),
                build=TemplateBuild(managed_node_id=f"mi-{index + 100:017d}" if in_build else None),
                tags={"Role": "r", "Confidentiality": "internal"},
            )
        counts.append(sum(calls.values()))
    assert counts == [expected] * 2, counts


# What each persona adds to synthesis (the review's reads, its warning; its tags' values are
# read only where a set_tag or remove_tag reached their manager).
JSII_SYNTH_CALLS_PER_PERSONA = 8


def test_jsii_round_trips_of_synthesis_per_persona() -> None:
    """Synthesis reads back little per persona: the review takes each persona's warnings
    from its own metadata only (its resources' CDK metadata cost four round trips each)."""
    counts = []
    for count in (2, 4):
        app = cdk.App(context=SCALE_CONTEXT)
        many_personas_stack(count, app=app)
        with jsii_calls() as calls:
            app.synth()
        counts.append(sum(calls.values()))
    assert (counts[1] - counts[0]) / 2 == JSII_SYNTH_CALLS_PER_PERSONA, counts


def test_jsii_round_trips_of_a_stack_with_its_first_persona() -> None:
    many_personas_stack(1, app=cdk.App(context=SCALE_CONTEXT))
    with jsii_calls() as calls:
        many_personas_stack(1, app=cdk.App(context=SCALE_CONTEXT))
    assert sum(calls.values()) == JSII_CALLS_FIRST_PERSONA


def test_one_detect_secrets_run_per_persona(monkeypatch: pytest.MonkeyPatch) -> None:
    """The persona scans the names, descriptions and tags it gives its image and bundles;
    the image and the bundle then find every line clean and run no scan of their own."""
    from detect_secrets.core.secrets_collection import SecretsCollection

    stack = many_personas_stack(1)
    runs: list[str] = []
    scan_file = SecretsCollection.scan_file

    def counted(self: SecretsCollection, *filenames: str, **kwargs: Any) -> None:
        runs.append(Path(filenames[0]).read_text())
        scan_file(self, *filenames, **kwargs)

    monkeypatch.setattr(SecretsCollection, "scan_file", counted)
    stack.add_persona(
        "Scanned",
        name="scanned-once",
        design=ImageDesign.THIN,
        image_version="2.0.0",
        template_workspace_id="ws-scanned001",
        baked_applications=["firefox"],
        launch_applications=["gimp"],
        config_management_agent="puppet-agent",
        tags={"Role": "r", "Confidentiality": "internal"},
        release=Release(candidate_bundle=True, released_version="2.0.0"),
    )
    assert len(runs) == 1, runs
    assert "scanned-once thin image version 2.0.0" in runs[0]
    assert "scanned-once persona candidate bundle (thin image)" in runs[0]


def test_importing_the_library_loads_only_what_every_app_needs() -> None:
    """Every public name imported: no cdk-nag, no detect-secrets (the first persona loads it),
    and none of the CDK modules only a rollout or notify() uses."""
    unused = (
        "cdk_nag",
        "detect_secrets",
        "aws_cdk.aws_dynamodb",
        "aws_cdk.aws_scheduler",
        "aws_cdk.aws_scheduler_targets",
        "aws_cdk.aws_kms",
        "aws_cdk.aws_cloudwatch_actions",
        # The build's workflow is JSON; only a rollout or a patch check uses the CDK's tasks.
        "aws_cdk.aws_stepfunctions_tasks",
    )
    program = (
        "import sys\n"
        "from workspaces_image_bakery import *\n"
        f"print(sorted(m for m in {unused!r} if m in sys.modules))"
    )
    assert last_line(program) == "[]"


def test_importing_the_constructs_makes_no_call_to_the_jsii_kernel() -> None:
    """Every Duration, token and construct is made when a construct is declared, not at
    import: importing the library costs its modules and the CDK modules they use, nothing
    more (`make bench` times it)."""
    program = (
        "import aws_cdk\n"
        "from jsii._kernel.providers import process\n"
        "calls = []\n"
        "send = process._NodeProcess.send\n"
        "def counted(self, request, response_type):\n"
        "    calls.append(type(request).__name__)\n"
        "    return send(self, request, response_type)\n"
        "process._NodeProcess.send = counted\n"
        "from workspaces_image_bakery import *\n"
        "print(calls)\n"
    )
    assert last_line(program) == "[]"


def test_workspaces_calls_per_deploy_scenario() -> None:
    """The calls `make bench` prints: a no-change redeploy makes none, a tag-only change
    no image call, a version bump one image and one bundle update. The first step of each
    build reads the Region's images once (the quota check), and a version bump keeps the
    replaced image: it is tagged retained and the persona's images are listed for pruning,
    with nothing deleted while fewer than retained_images exist. Each build tags its record's
    digest on its image once (CreateTags)."""
    from .bench import scenario_calls

    totals = {name: sum(counted.values()) for name, counted in scenario_calls().items()}
    assert totals == {
        "first deploy": 26,
        "no-change redeploy": 0,
        "tag-only change": 14,
        "version bump (one persona)": 22,
    }
    bump = scenario_calls()["version bump (one persona)"]
    assert bump["CreateWorkspaceImage"] == 1 and bump["UpdateWorkspaceBundle"] == 1
    assert bump["CreateTags"] >= 1  # the record's digest, among others
    assert "DeleteWorkspaceImage" not in bump  # the replaced image is retained


def test_fifty_personas_prepared_in_the_build_fit_one_stack() -> None:
    """Scripts travel as assets, not in the template, and one document runs them all: 50
    prepared personas (preparation and seal each) keep the template under half of
    CloudFormation's 1 MB (about 420 KB)."""
    import json

    from aws_cdk.assertions import Template

    template = Template.from_stack(many_personas_stack(50, in_build=True)).to_json()
    size = len(json.dumps(template, indent=1))
    documents = [r for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Document"]
    assert len(documents) == 3  # marker, inventory, scripts
    assert size < 512_000, size
    assert not any("apt-get install -y firefox-esr" in json.dumps(d) for d in documents)


def test_the_benchmarks_same_template_app_declares_the_librarys_template(tmp_path: Path) -> None:
    """`make bench`'s "same" baseline: a plain CDK app that declares, one CfnResource each,
    the very resources, outputs and assets the library synthesized (prepared in the build,
    so script assets too)."""
    import json

    from .bench_app import CONTEXT, same

    library_app = cdk.App(outdir=str(tmp_path / "library"), context=CONTEXT)
    many_personas_stack(2, in_build=True, app=library_app)
    library_app.synth()
    same_app = cdk.App(outdir=str(tmp_path / "same"), context=CONTEXT)
    same(same_app, tmp_path / "library")
    same_app.synth()

    def read(folder: str) -> tuple[dict[str, Any], set[str]]:
        (template,) = (tmp_path / folder).glob("*.template.json")
        (assets,) = (tmp_path / folder).glob("*.assets.json")
        files = json.loads(assets.read_text())["files"]
        return json.loads(template.read_text()), {
            digest for digest, f in files.items() if not f["source"]["path"].endswith(".json")
        }

    (library_template, library_assets), (same_template, same_assets) = read("library"), read("same")
    assert same_template["Resources"] == library_template["Resources"]
    assert same_template["Outputs"] == library_template["Outputs"]
    assert same_assets == library_assets
    # The in-process measurement declares all three apps in one process, a round each
    # untimed, and reports a median for each.
    from .bench_app import in_process

    medians = in_process(2, 1, tmp_path / "library")
    assert set(medians) == {"library", "same", "plain"}
    assert all(seconds > 0 for seconds in medians.values())


def test_the_benchmark_pairs_each_round_before_it_takes_the_median() -> None:
    """`make bench`'s ratios: the median of each round's ratio, not a ratio of medians (a
    round that ran on a slower machine moves both of its runs)."""
    from .bench import paired

    # Three rounds: 2.0x, 1.0x and 1.5x (the ratio of the medians would be 4/4 = 1.0x).
    assert paired([2.0, 4.0, 6.0], [1.0, 4.0, 4.0]) == 1.5
    with pytest.raises(ValueError):
        paired([1.0], [1.0, 2.0])  # runs of different rounds never pair
