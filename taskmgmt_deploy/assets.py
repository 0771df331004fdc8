"""Where the function source (lambda/) and the migrations (sql/) are.

In a source checkout they sit next to the package; an installed wheel carries copies
under taskmgmt_deploy/_assets (see pyproject.toml's force-include).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _asset(name: str) -> Path:
    bundled = _HERE / "_assets" / name
    return bundled if bundled.is_dir() else _HERE.parent / name


def lambda_dir() -> Path:
    return _asset("lambda")


def sql_dir() -> Path:
    return _asset("sql")
