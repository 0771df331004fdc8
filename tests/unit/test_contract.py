"""The one test that pins what lambda/ and taskmgmt_deploy/ agree on.

They never import each other (the function ships alone; the tool never runs its code), so
the names they share are written twice and compared here.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from taskmgmt_deploy.assets import lambda_dir
from taskmgmt_deploy.database import migrate
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _lambda_module(name: str):
    path = lambda_dir() / "task_processor" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"contract_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_function_and_the_deployer_agree():
    contract = _lambda_module("contract")
    assert (blueprint.ENV_DSQL_ENDPOINT, blueprint.ENV_EVENT_BUS, blueprint.ENV_STACK) == (
        contract.ENV_DSQL_ENDPOINT,
        contract.ENV_EVENT_BUS,
        contract.ENV_STACK,
    )
    assert blueprint.EVENT_SOURCE == contract.EVENT_SOURCE
    assert list(blueprint.TASK_DETAIL_TYPES) == list(contract.DETAIL_TYPES)
    assert migrate.APP_ROLE == contract.DB_APP_ROLE


def test_the_function_gets_exactly_the_environment_it_reads(tmp_path):
    contract = _lambda_module("contract")
    stack = load_settings({}, {}, tmp_path).stack
    function = next(r for r in blueprint.build(stack) if r.kind == "lambda_function")
    assert set(function.spec["environment"]) == {contract.ENV_DSQL_ENDPOINT, contract.ENV_EVENT_BUS, contract.ENV_STACK}


def test_the_handler_string_names_a_real_function():
    module, function = blueprint.HANDLER.rsplit(".", 1)
    path = lambda_dir() / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    assert any(isinstance(node, ast.FunctionDef) and node.name == function for node in tree.body)


def _imports(directory: Path) -> set[str]:
    found: set[str] = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_neither_side_imports_the_other():
    assert "taskmgmt_deploy" not in _imports(lambda_dir())
    assert "task_processor" not in _imports(ROOT / "taskmgmt_deploy")


def test_the_function_imports_only_what_its_package_or_runtime_has():
    requirements = (lambda_dir() / "requirements.txt").read_text()
    assert "psycopg[binary]" in requirements
    third_party = _imports(lambda_dir()) - {"task_processor", "__future__"}
    import sys

    stdlib = set(sys.stdlib_module_names)
    assert third_party - stdlib == {"psycopg", "boto3"}  # boto3 comes with the Lambda runtime


def test_serve_refuses_an_oversized_body_with_the_functions_own_answer(monkeypatch):
    """One limit, one message: what `taskmgmt serve` answers to a body it will not forward is
    what the function answers to the same body."""
    import json

    from taskmgmt_deploy.usecases import serve

    monkeypatch.syspath_prepend(str(lambda_dir()))
    from task_processor import api

    event = {"httpMethod": "POST", "path": "/tasks", "body": "x" * (serve.MAX_BODY_BYTES + 1)}
    response = api.handle(event, None, "r")  # refused before the app is used
    assert api.MAX_BODY_BYTES == serve.MAX_BODY_BYTES
    assert (response["statusCode"], json.loads(response["body"])) == (413, serve.TOO_LARGE)
