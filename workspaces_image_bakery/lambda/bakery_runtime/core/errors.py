"""Exceptions whose class names the state machine and the Provider framework report."""

from __future__ import annotations


class BuildFailed(Exception):  # noqa: N818 - the name is the Step Functions error name
    """A build cannot succeed; retrying will not help. The message says why and what to do."""


class TransientError(Exception):
    """A call failed in a way a later retry may fix (throttling after botocore's retries)."""


class InvalidPropertiesError(ValueError):
    """A custom-resource property CloudFormation sent cannot be parsed."""
