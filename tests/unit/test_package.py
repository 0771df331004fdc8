"""The function package: arm64 wheels for Lambda, never the host's; deterministic; runnable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from taskmgmt_deploy.assets import lambda_dir
from taskmgmt_deploy.steps.packaging import (
    LAMBDA_ARM64,
    PackageBuilder,
    PackagingError,
    check_architecture,
    native_libraries,
    this_machine,
    write_zip,
)
from taskmgmt_deploy.usecases.factory import _default_cache

MAX_PACKAGE_BYTES = 15 * 1024 * 1024


@pytest.fixture(scope="module")
def arm64_package():
    """Built once per run; the wheels come from the package index the first time, then the cache."""
    return PackageBuilder(lambda_dir(), _default_cache() / "packages", LAMBDA_ARM64).build()


def test_arm64_package_holds_only_aarch64_libraries(arm64_package):
    libraries = native_libraries(arm64_package.path)
    assert libraries, "psycopg's binary extension should be in the package"
    assert set(libraries.values()) == {"aarch64"}
    extensions = [name for name in libraries if name.endswith(".so") and "cpython" in name]
    assert extensions and all("cpython-313-aarch64-linux-gnu" in name for name in extensions)


def test_arm64_package_layout_and_size(arm64_package):
    with zipfile.ZipFile(arm64_package.path) as archive:
        names = archive.namelist()
    assert "task_processor/handler.py" in names
    assert {f"task_processor/board/{name}" for name in ("index.html", "board.js", "board.css")} <= set(names)
    assert any(name.startswith("psycopg/") for name in names)
    assert any(name.startswith("psycopg_binary/") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert not any(name.startswith(("boto3/", "botocore/")) for name in names)  # the runtime's
    assert arm64_package.size <= MAX_PACKAGE_BYTES


def test_the_build_is_deterministic_and_cached(arm64_package, tmp_path: Path):
    shared = arm64_package.path.parent
    assert PackageBuilder(lambda_dir(), shared, LAMBDA_ARM64).cached() == arm64_package
    # Rebuilt in a cache of its own, with the dependencies already installed: the shared
    # package stays where it is, as other tests and processes may be reading it.
    own = tmp_path / "packages"
    own.mkdir()
    for deps in shared.glob(f"deps-{LAMBDA_ARM64.label}-*"):
        (own / deps.name).symlink_to(deps)
    builder = PackageBuilder(lambda_dir(), own, LAMBDA_ARM64)
    assert builder.cached() is None
    rebuilt = builder.build()
    assert rebuilt.code_sha256 == arm64_package.code_sha256
    assert builder.cached() == rebuilt


def test_a_library_of_another_architecture_is_refused(tmp_path: Path):
    host_library = next(p for p in Path(sys.prefix).rglob("*.so") if "psycopg_binary" in str(p))
    zipped = tmp_path / "mixed.zip"
    write_zip(zipped, [("psycopg_binary/_psycopg.so", host_library)])
    with pytest.raises(PackagingError, match="not aarch64"):
        check_architecture(zipped, "aarch64")


def test_the_same_builder_for_this_machine_makes_a_package_that_serves_requests(tmp_path: Path, database_url):
    from taskmgmt_deploy.assets import sql_dir
    from taskmgmt_deploy.database.connect import from_url
    from taskmgmt_deploy.database.migrate import Migrator
    from taskmgmt_deploy.database.sqlfiles import load_migrations

    Migrator(from_url(database_url), load_migrations(sql_dir()), dsql=False, role_arn=None).apply()
    package = PackageBuilder(lambda_dir(), _default_cache() / "packages", this_machine()).build()
    assert set(native_libraries(package.path).values()) == {this_machine().machine}
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(unpacked)
    script = (
        "import json, psycopg, task_processor.handler as h\n"
        f"assert psycopg.__file__.startswith({str(unpacked)!r}), psycopg.__file__\n"
        "event = {'httpMethod': 'POST', 'path': '/tasks', 'body': json.dumps({'title': 't', 'created_by': 'a'})}\n"
        "print(json.dumps(h.lambda_handler(event, None)))\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(unpacked),
        "HOME": str(tmp_path),
        "TASKMGMT_DATABASE_URL": database_url.replace("postgres:@", "taskmgmt_app:@"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["statusCode"] == 201
