"""A plain `pip install taskmgmt` (no extras), simulated in this venv: the sandbox's packages are
made unimportable in a child process, and the checks CI runs on a real plain install
(.ci/plain_install_check.py) run there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from taskmgmt_deploy.sandbox import EXTRA_MODULES, INSTALL_EXTRA

CHECK = Path(__file__).resolve().parents[2] / ".ci" / "plain_install_check.py"
# click too: typer vendors its own, and only flask brings click into this venv
MISSING = (*EXTRA_MODULES, "click")

CHILD_PRELUDE = f"""
import importlib.abc, importlib.util, io, json, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {MISSING!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Missing())
spec = importlib.util.spec_from_file_location("plain_install_check", {str(CHECK)!r})
check = sys.modules["plain_install_check"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)
"""

RUN_CASES = """
from taskmgmt_deploy.cli import main

results = []
for case in check.help_cases() + check.sandbox_cases():
    out, err = io.StringIO(), io.StringIO()
    sys.stdout, sys.stderr = out, err
    try:
        main(list(case.argv))
        code = 0
    except SystemExit as done:
        code = done.code
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    results.append({"argv": case.argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""


def in_child(code: str, cwd: Path) -> object:
    done = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + code], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_every_module_outside_the_sandbox_imports_without_the_sandbox_packages(tmp_path):
    imported, leaked = in_child(
        f"names = check.import_all()\n"
        f"print(json.dumps([names, sorted(m for m in sys.modules if m.partition('.')[0] in {MISSING!r})]))",
        tmp_path,
    )
    assert leaked == []
    wanted = {"taskmgmt_deploy.cli.main", "taskmgmt_deploy.usecases.factory", "taskmgmt_deploy.steps.lambda_fn"}
    assert wanted <= set(imported)
    assert not any(".sandbox" in name or ".emulator" in name for name in imported)


def test_without_the_sandbox_extra_help_works_and_the_sandbox_names_its_install_command(tmp_path):
    results = in_child(RUN_CASES, tmp_path)
    helps = [r for r in results if r["argv"][-1] == "--help"]
    sandbox = [r for r in results if r["argv"][-1] != "--help"]
    assert ["deploy", "--help"] in [r["argv"] for r in helps] and ["sandbox", "start", "--help"] in [
        r["argv"] for r in helps
    ]
    for result in helps:
        assert result["code"] == 0 and "Usage" in result["out"], result
    argvs = [r["argv"] for r in sandbox]
    assert ["sandbox", "start"] in argvs and ["deploy", "--yes", "--sandbox"] in argvs and len(argvs) >= 10
    for result in sandbox:
        lines = result["err"].strip().splitlines()
        assert result["code"] == 2, result
        assert len(lines) == 1 and INSTALL_EXTRA in lines[0] and "moto" in lines[0], result
    assert not any((tmp_path / ".taskmgmt").glob("**/*"))  # nothing was started or written
