"""The board in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium).

Playwright's own browser builds are not downloaded (they are not reachable here); `.ci/run`
installs the system browser with apt when it is absent. Without it the tests skip, except in
CI (CI=true), where a missing browser fails them. Screenshots go to tests/live/artifacts/
(or $BOARD_ARTIFACTS).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("BOARD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("BOARD_ARTIFACTS") or Path(__file__).parent / "artifacts")


def chromium_path() -> str:
    found = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if found:
        return found
    message = f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' brings playwright")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            # as root Chromium needs --no-sandbox; the rest keeps a shared 2-core machine quiet
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-extensions"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Pages, each in its own browser context (its own storage), closed after the test: a page
    left open keeps its socket, and the stand-in regions wait for sockets when they stop."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        contexts.append(browser.new_context(**options))
        page = contexts[-1].new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # yes to "Delete ...?"
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def live_database(pg_server: Any) -> str:
    """One migrated database for the module, as the function's own role."""
    import psycopg

    from taskmgmt_deploy.assets import sql_dir
    from taskmgmt_deploy.database.connect import from_url
    from taskmgmt_deploy.database.migrate import Migrator
    from taskmgmt_deploy.database.sqlfiles import load_migrations

    name = "live_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_server.get_uri().replace("/postgres?", f"/{name}?")
    Migrator(from_url(url), load_migrations(sql_dir()), dsql=False, role_arn=None).apply()
    return url.replace("postgres:@", "taskmgmt_app:@")
