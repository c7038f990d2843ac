"""Fixtures for the UI tests: Debian's Chromium driven by Playwright (never a
browser that Playwright downloads), and a real `replaybook server` process.

Without Chromium or the playwright package the browser tests skip; CI sets
REPLAYBOOK_REQUIRE_BROWSER=1, and there they fail instead, so a machine without a
browser cannot pass for a green run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from replaybook.client import ApiClient
from replaybook.server.cluster import LocalCluster

CHROMIUM = os.environ.get("REPLAYBOOK_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("REPLAYBOOK_REQUIRE_BROWSER") == "1"


def _no_browser(why: str) -> NoReturn:
    if REQUIRE_BROWSER:
        pytest.fail(f"REPLAYBOOK_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _no_browser(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    expect.set_options(timeout=20_000)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"]
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"script errors in the page: {errors}"


def server_env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REPLAYBOOK_SERVER",)}
    env.pop("REPLAYBOOK_API_TOKEN", None)
    env["REPLAYBOOK_DATA_DIR"] = str(base / "data")
    env["REPLAYBOOK_SCHEDULER"] = "0"
    env.update(extra)
    return env


class Server:
    def __init__(self, cluster: LocalCluster, api: ApiClient, base: Path) -> None:
        self.cluster = cluster
        self.url = cluster.url
        self.api = api
        self.base = base

    def register(self, yaml_text: str) -> dict[str, Any]:
        out: dict[str, Any] = self.api.register(yaml_text)
        return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`replaybook server --workers 3` on a SQLite file, with a secret in its
    environment for the masking test."""
    base = tmp_path_factory.mktemp("ui-server")
    env = server_env(base, MY_TOKEN="tok-5f1e9a-very-secret-value")
    cluster = LocalCluster(
        f"sqlite:///{base / 'rb.db'}", workers=0, server_workers=3, env=env, log_dir=base / "logs"
    )
    with cluster, ApiClient(cluster.url) as api:
        yield Server(cluster, api, base)


@pytest.fixture
def env_for() -> Any:
    """`server_env` for tests that start a server of their own."""
    return server_env
