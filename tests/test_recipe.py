"""What rebuilds an image and what does not: the recipe fingerprint in names and logical ids."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Duration

from .harness.stacks import two_personas


def names(template: dict[str, Any]) -> dict[str, str]:
    return {
        r["Properties"]["Persona"]: r["Properties"]["ImageName"]
        for r in template["Resources"].values()
        if r["Type"] == "Custom::WorkSpacesImage"
    }


def wait_ids(template: dict[str, Any]) -> set[str]:
    return {
        k
        for k, r in template["Resources"].items()
        if r["Type"].startswith("AWS::CloudFormation::Wait")
    }


@pytest.fixture(scope="module")
def variants() -> dict[str, dict[str, Any]]:
    return {
        "base": two_personas(),
        "version": two_personas(developer_version="1.1.0"),
        "tags": two_personas(stage="prod"),
        "compute": two_personas(developer_compute="POWER"),
        "rebuild": two_personas(context={"workspaces-image-bakery:rebuild": "2026-11-patch"}),
        "timeout": two_personas(developer_build_timeout=Duration.hours(9)),
    }


def test_a_new_version_rebuilds_only_that_persona(variants: dict[str, dict[str, Any]]) -> None:
    base, changed = names(variants["base"]), names(variants["version"])
    assert changed["developer"] != base["developer"]
    assert changed["developer"].startswith("developer-1.1.0-")
    assert changed["office"] == base["office"]
    assert len(wait_ids(variants["version"]) - wait_ids(variants["base"])) == 2


def test_tag_compute_and_timeout_changes_do_not_rebuild(
    variants: dict[str, dict[str, Any]],
) -> None:
    for variant in ("tags", "compute", "timeout"):
        assert names(variants[variant]) == names(variants["base"])
        assert wait_ids(variants[variant]) == wait_ids(variants["base"])


def test_a_timeout_change_leaves_every_wait_condition_as_it_was(
    variants: dict[str, dict[str, Any]],
) -> None:
    def waits(t: dict[str, Any]) -> dict[str, Any]:
        return {
            k: r
            for k, r in t["Resources"].items()
            if r["Type"].startswith("AWS::CloudFormation::Wait")
        }

    assert waits(variants["timeout"]) == waits(variants["base"])
    timeouts = {
        r["Properties"]["Persona"]: r["Properties"]["BuildTimeoutSeconds"]
        for r in variants["timeout"]["Resources"].values()
        if r["Type"] == "Custom::WorkSpacesImage"
    }
    assert timeouts == {"developer": "32400", "office": "21600"}


def test_compute_change_renames_the_bundle_so_it_is_replaced(
    variants: dict[str, dict[str, Any]],
) -> None:
    def bundle_names(t: dict[str, Any]) -> set[str]:
        return {
            r["Properties"]["BundleName"]
            for r in t["Resources"].values()
            if r["Type"] == "Custom::WorkSpacesBundle"
        }

    base, changed = bundle_names(variants["base"]), bundle_names(variants["compute"])
    assert len(base - changed) == 1 and len(changed - base) == 1
    assert next(iter(changed - base)).startswith("developer-")


def test_rebuild_context_rebuilds_every_image(variants: dict[str, dict[str, Any]]) -> None:
    base, rebuilt = names(variants["base"]), names(variants["rebuild"])
    assert all(rebuilt[p] != base[p] for p in base)
    assert not wait_ids(variants["rebuild"]) & wait_ids(variants["base"])
