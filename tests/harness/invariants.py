"""The six invariants every failure-mode scenario ends with."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from bakery_runtime.core import contract

from ..fakes.workspaces_service import OWNER_TAG
from .world import World


def snapshot_foreign(w: World) -> dict[str, Any]:
    """What the stack did not create: it must come out of every scenario unchanged."""
    return {
        "images": {k: copy.deepcopy(vars(v)) for k, v in w.fake.images.items() if not w.owned(k)},
        "bundles": {k: copy.deepcopy(vars(v)) for k, v in w.fake.bundles.items() if not w.owned(k)},
        "tags": {
            k: dict(v)
            for k, v in w.fake.tags.items()
            if not w.owned(k) and k not in w.fake.workspaces
        },
    }


def declared(template: Mapping[str, Any], resource_type: str, name_key: str) -> dict[str, Any]:
    return {
        r["Properties"][name_key]: {t["Key"]: t["Value"] for t in r["Properties"]["Tags"]}
        for r in template["Resources"].values()
        if r["Type"] == resource_type
    }


def check(
    w: World,
    *,
    foreign: Mapping[str, Any],
    deployed: Mapping[str, Any] | None = None,
    failure: str | None = None,
    persona: str | None = None,
) -> None:
    fake = w.fake
    # 1. Every bundle points at an image that exists and is AVAILABLE.
    for bundle in fake.bundles.values():
        used = fake.images.get(bundle.image_id)
        assert used is not None, f"bundle {bundle.name} points at a missing image"
        assert used.state == "AVAILABLE", f"bundle {bundle.name} points at a {used.state} image"
    # 2. At most one image per recipe (the name carries the fingerprint); none PENDING or ERROR.
    names = [i.name for i in fake.images.values()]
    assert len(names) == len(set(names)), names
    for name, image in w.images().items():
        assert image["state"] == "AVAILABLE", f"{name} left {image['state']}"
    # 3. No build workflow still running once the stack operation has ended.
    assert w.cloudformation.running() == []
    # 4. A failure reaches the stack event with a reason a person can act on.
    if failure is not None:
        assert persona is None or persona in failure, failure
        assert len(failure) > 40, failure
    # 5. After a successful deploy the declared tags are exactly the tags on each resource.
    if deployed is not None:
        images = w.images()
        for name, tags in declared(deployed, "Custom::WorkSpacesImage", "ImageName").items():
            assert images[name]["tags"] == tags, name
        bundles = w.bundles()
        pinned = {
            r["Properties"]["BundleName"]
            for r in deployed["Resources"].values()
            if r["Type"] == "Custom::WorkSpacesBundle" and "ReleasedVersion" in r["Properties"]
        }
        for name, tags in declared(deployed, "Custom::WorkSpacesBundle", "BundleName").items():
            expected = dict(tags)
            if name in pinned:
                # A bundle serving a released image carries that image's Version and Software.
                served = w.fake.tags[w.fake.bundles[bundles[name]["id"]].image_id]
                expected.update({k: served[k] for k in contract.IMAGE_CONTENT_TAG_KEYS})
            assert bundles[name]["tags"] == expected, name
        # Images beyond the declared ones are retained earlier images: tagged so, and no
        # more per persona than the persona retains.
        declared_images = declared(deployed, "Custom::WorkSpacesImage", "ImageName")
        retained = {
            r["Properties"]["Persona"]: int(r["Properties"].get("RetainedImages", "1"))
            for r in deployed["Resources"].values()
            if r["Type"] == "Custom::WorkSpacesImage"
        }
        per_persona: dict[str, int] = {}
        for name, image in images.items():
            raw = w.fake.tags[image["id"]]
            persona = raw.get(contract.PERSONA_TAG_KEY, "")
            per_persona[persona] = per_persona.get(persona, 0) + 1
            if name not in declared_images:
                assert contract.RETAINED_TAG_KEY in raw, f"{name} is neither declared nor retained"
        for persona, count in per_persona.items():
            assert count <= max(retained.get(persona, 1), 1), (persona, count)
        assert len(bundles) == len(declared(deployed, "Custom::WorkSpacesBundle", "BundleName"))
    # 6. Nothing is deleted or changed that the stack did not create.
    assert snapshot_foreign(w) == foreign
    for resource_id, tags in fake.tags.items():
        if tags.get(OWNER_TAG) not in (None, w.cloudformation.stack_id):
            raise AssertionError(f"{resource_id} carries another stack's ownership tag")
