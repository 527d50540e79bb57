"""No stack traces in the metadata of the library's constructs.

The CDK records a JavaScript stack trace with each annotation (warning, error, info) unless
the context ``aws:cdk:disable-stack-trace`` is set. A Python app makes every construct
through the jsii runtime, so that trace holds no frame of the app, and ``cdk synth`` shows
the runtime's temporary copy (``/tmp/tmp.../lib/program.js:1:...``) above each warning as
its source. A construct of the library sets the context on itself, before it has children,
so nothing under it records one.
"""

from __future__ import annotations

from typing import Final

from constructs import IConstruct

# cx-api's DISABLE_METADATA_STACK_TRACE (a TypeScript constant jsii does not carry).
DISABLE_STACK_TRACE: Final = "aws:cdk:disable-stack-trace"
# Set (in Python, no round trip) on a construct whose subtree records no stack traces.
QUIET_ATTRIBUTE: Final = "_records_no_stack_traces"


def without_stack_traces(construct: IConstruct) -> None:
    """No stack trace with the metadata of `construct` and its children, unless the app set
    the context itself (``"aws:cdk:disable-stack-trace": false`` in cdk.json's context
    keeps them). Call it before the construct has children."""
    if construct.node.try_get_context(DISABLE_STACK_TRACE) is None:
        construct.node.set_context(DISABLE_STACK_TRACE, True)
    setattr(construct, QUIET_ATTRIBUTE, True)
