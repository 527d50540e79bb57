"""Shared test set-up: the Lambda asset folder on sys.path, as the Lambda runtime has it."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import botocore.loaders
import botocore.session
import pytest

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = ROOT / "workspaces_image_bakery" / "lambda"
if str(LAMBDA_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDA_DIR))

# No AWS account here: every client talks to a fake or to moto. The runtime's functions
# act for the stack in their configuration: the test stack (harness.cloudformation.STACK_ID).
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    OWNER_STACK_ID="arn:aws:cloudformation:us-east-1:123456789012:stack/WorkSpacesImageBakery/1111-2222",
)
os.environ.pop("AWS_PROFILE", None)

# The library's cache folder (runtime zips, SBOM layers, scripts, the secret scan's clean
# lines) is one temporary folder per test run, shared by the xdist workers and the processes
# tests start: a test never depends on what earlier runs, or the user's synths, left in
# ~/.cache (a line kept clean there would skip the detect-secrets run a test counts).
if "WORKSPACES_IMAGE_BAKERY_TEST_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="workspaces-image-bakery-tests-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["WORKSPACES_IMAGE_BAKERY_TEST_CACHE"] = _cache
    os.environ["XDG_CACHE_HOME"] = _cache

# One botocore data loader per process, as the Lambda runtime has (its clients share boto3's
# default session): each fake makes its own Session, and without this each of them parses
# the service models' JSON again (about half of a deploy-through-workflow test's time). The
# models, and botocore's validation of every request against them, are the same.
botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)


@pytest.fixture(autouse=True)
def _no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """botocore's retries still happen (and are counted), without sleeping between them."""
    from botocore.retries import standard

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, context: 0)
    yield


# The modules with the longest single tests (a real `cdk synth` of the reference app, a
# wheel built and installed, every docs example in one process, shellcheck, the CLI's
# warnings), collected first: with two xdist workers, a long test among the last leaves the
# other worker idle at the end. Each module keeps its tests' order.
SLOW_MODULES_FIRST = (
    "test_cli_synth.py",
    "test_packaging.py",
    "test_docs_examples.py",
    "test_synth_warnings.py",
    "test_preparation_script.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in SLOW_MODULES_FIRST)
