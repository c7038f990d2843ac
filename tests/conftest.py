"""Suite-wide rules.

Tests that need PostgreSQL skip when it is unreachable (a laptop without it can still
run the suite). CI sets REPLAYBOOK_REQUIRE_PG=1: there, such a skip is a failure, so a
broken PostgreSQL cannot pass for a green run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

REQUIRE_PG = os.environ.get("REPLAYBOOK_REQUIRE_PG") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_PG and report.skipped and "postgresql" in str(report.longrepr).lower():
        report.outcome = "failed"
        report.longrepr = f"REPLAYBOOK_REQUIRE_PG=1 but the test was skipped: {report.longrepr}"
