"""Fixtures for tests that need real parts (see DESIGN.md, "Testing with real parts").

Copy the pattern: a session fixture checks the part once; when it is missing the
tests that use it skip with the reason, unless ``OMNIHUB_TEST_REQUIRE_ALL=1``
(set in CI), in which case they fail.
"""

from __future__ import annotations

import os
import uuid

import pytest


def require_all() -> bool:
    """True when a missing real part must fail the run instead of skipping."""
    return os.environ.get("OMNIHUB_TEST_REQUIRE_ALL") == "1"


def missing_part(reason: str) -> None:
    """Skip the requesting test, or fail it under ``OMNIHUB_TEST_REQUIRE_ALL=1``."""
    if require_all():
        pytest.fail(f"{reason} (OMNIHUB_TEST_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def unique() -> str:
    """A prefix unique to this test, so parallel runs sharing a Redis never collide."""
    return f"omnihub-test-{uuid.uuid4().hex[:12]}"
