"""Adding a persona adds at most 4 resources; 50 personas (the bundle quota) fit one stack."""

from __future__ import annotations

from .harness.stacks import many_personas

CLOUDFORMATION_RESOURCE_LIMIT = 500


def test_fifty_personas_share_one_runtime() -> None:
    one, two, fifty = (len(many_personas(n)["Resources"]) for n in (1, 2, 50))
    assert two - one == 4
    assert (fifty - one) / 49 == 4
    assert fifty < CLOUDFORMATION_RESOURCE_LIMIT / 2
