"""Fixtures for the server tests: a PostgreSQL database per test session (skipped,
or failed with REPLAYBOOK_REQUIRE_PG=1, when PostgreSQL is not there), playbook
files, and the environment the server and worker processes get."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import pgtest


@pytest.fixture(scope="session")
def pg_server_database() -> Iterator[str]:
    pgtest.require()
    name = pgtest.create_database("rb_server_test")
    yield name
    pgtest.drop_database(name)


@pytest.fixture
def pg_url(pg_server_database: str) -> str:
    """A fresh schema in the session's database (made by the first process opening it)."""
    return pgtest.url_of(pg_server_database, schema=pgtest.new_schema_name())


@pytest.fixture
def proc_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REPLAYBOOK_SERVER"}
    env["REPLAYBOOK_DATA_DIR"] = str(tmp_path / "data")
    env.pop("REPLAYBOOK_API_TOKEN", None)
    return env
