"""Each Appendix A item: a configuration it scores as aligned and one it does not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from workspaces_image_bakery.checklist import ITEMS, PersonaFacts, Scorecard, assess
from workspaces_image_bakery.preparation import Clipboard, ImagePreparation

FULL_PREPARATION = ImagePreparation(
    install_steps=["apt-get install -y git"],
    validation_steps=["git --version"],
    security_agents=("clamav",),
    log_forwarding_agent="amazon-cloudwatch-agent",
    monitoring_agents=("amazon-cloudwatch-agent",),
    remote_assistance_tools=("remmina",),
)
ALIGNED = PersonaFacts(
    name="developer",
    design="thin",
    image_version="1.0.0",
    image_name="developer-1.0.0-0123abcd",
    bundle_name="developer-abc123",
    template_workspace_id="ws-dev0template1",
    baked_applications=("git 2.47",),
    launch_applications=("docker-ce",),
    config_management_agent="puppet-agent 8",
    license_references={"docker-ce": "/licenses/docker"},
    preparation=FULL_PREPARATION,
    tags={"Role": "dev", "System": "eng", "Compliance": "iso-27001"},
)
OTHER = replace(
    ALIGNED, name="office", baked_applications=("libreoffice 7.6",), design="fully-baked"
)

# item number -> (changes that make the persona not aligned, the lowest score expected)
NOT_ALIGNED: dict[int, dict[str, Any]] = {
    1: {"preparation": None},
    2: {"design": "fully-baked", "baked_applications": tuple(f"app{i}" for i in range(12)), "launch_applications": ()},
    3: {"root_volume_gib": 175, "user_volume_gib": 100},
    5: {"baked_applications": OTHER.baked_applications, "design": OTHER.design, "config_management_agent": OTHER.config_management_agent},
    6: {"baked_applications": OTHER.baked_applications},
    7: {"config_management_agent": None},
    8: {"config_management_agent": None},
    9: {"tags": {}},
    10: {"preparation": replace(FULL_PREPARATION, validation_steps=())},
    12: {"preparation": None},
    14: {"design": "fully-baked", "launch_applications": ()},
    15: {"preparation": None},
    16: {"preparation": replace(FULL_PREPARATION, security_agents=())},
    17: {"preparation": replace(FULL_PREPARATION, log_forwarding_agent=None)},
    18: {"preparation": replace(FULL_PREPARATION, pcoip_aes256_only=False, clipboard=Clipboard.BOTH_DIRECTIONS)},
    19: {"preparation": replace(FULL_PREPARATION, monitoring_agents=())},
    20: {"preparation": replace(FULL_PREPARATION, remote_assistance_tools=())},
    22: {"tags": {"Role": "dev"}},
}  # fmt: skip
NOT_ASSESSABLE_WITHOUT_EVIDENCE: dict[int, dict[str, Any]] = {
    4: {"license_references": {}},
    11: {},
    21: {},
}
ALWAYS_ALIGNED = {13}  # one cdk deploy creates and updates: true of every configuration


def score(facts: PersonaFacts, number: int) -> tuple[int | None, str]:
    item = assess(facts, [facts, OTHER])[number - 1]
    return item.score, item.reason


def test_the_checklist_has_the_whitepapers_22_items() -> None:
    assert len(ITEMS) == 22
    assert sorted(NOT_ALIGNED) + sorted(NOT_ASSESSABLE_WITHOUT_EVIDENCE) + sorted(ALWAYS_ALIGNED)
    covered = set(NOT_ALIGNED) | set(NOT_ASSESSABLE_WITHOUT_EVIDENCE) | ALWAYS_ALIGNED
    assert covered == set(range(1, 23))


@pytest.mark.parametrize("number", range(1, 23))
def test_aligned_configuration_scores_high(number: int) -> None:
    value, reason = score(ALIGNED, number)
    if number in (11, 21):
        assert value is None and "not assessable" in reason and "evidence" in reason
    else:
        assert value == 5, reason
    assert reason and "\n" not in reason


@pytest.mark.parametrize("number", sorted(NOT_ALIGNED))
def test_not_aligned_configuration_scores_lower(number: int) -> None:
    value, reason = score(replace(ALIGNED, **NOT_ALIGNED[number]), number)
    assert value is not None and value < 5, (number, reason)


@pytest.mark.parametrize("number", sorted(NOT_ASSESSABLE_WITHOUT_EVIDENCE))
def test_without_evidence_an_item_is_not_assessable_never_guessed(number: int) -> None:
    value, reason = score(replace(ALIGNED, **NOT_ASSESSABLE_WITHOUT_EVIDENCE[number]), number)
    assert value is None
    assert "not assessable" in reason and "evidence" in reason


def test_one_step_deployment_holds_for_any_configuration() -> None:
    bare = replace(ALIGNED, preparation=None, config_management_agent=None, tags={})
    assert score(bare, 13)[0] == 5


def test_scores_per_persona_and_overall_ignore_unassessable_items() -> None:
    card = Scorecard.of(
        [ALIGNED, replace(ALIGNED, name="bare", preparation=None, baked_applications=("vim",))]
    )
    assert card.scores["developer"] == 5.0
    assert card.scores["bare"] < 5.0
    assert card.overall == round((card.scores["developer"] + card.scores["bare"]) / 2, 1)
    assert "2 of 22 items not assessable" in card.summary()  # items 11 and 21
    assert card.below(4.9) and not Scorecard.of([ALIGNED]).below(5.0)
