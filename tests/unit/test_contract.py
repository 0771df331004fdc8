"""The one test that pins what lambda/ and taskmgmt_deploy/ agree on.

They never import each other (the function ships alone; the tool never runs its code), so
the names they share are written twice and compared here.
"""

from __future__ import annotations

import ast
import importlib.util
import re
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


ENV_NAMES = (
    "ENV_DSQL_ENDPOINT",
    "ENV_EVENT_BUS",
    "ENV_STACK",
    "ENV_API_AUTH",
    "ENV_JWT_ISSUER",
    "ENV_JWT_AUDIENCE",
    "ENV_JWT_LOGIN_URL",
)


def test_the_function_and_the_deployer_agree():
    contract = _lambda_module("contract")
    assert [getattr(blueprint, name) for name in ENV_NAMES] == [getattr(contract, name) for name in ENV_NAMES]
    assert blueprint.EVENT_SOURCE == contract.EVENT_SOURCE
    assert list(blueprint.TASK_DETAIL_TYPES) == list(contract.DETAIL_TYPES)
    assert migrate.APP_ROLE == contract.DB_APP_ROLE


def test_the_apis_route_what_the_function_serves_and_pass_what_it_reads(monkeypatch):
    """Every route the handler serves is a route of the HTTP API (and nothing else is, but the
    board's); the stage variables and the broadcast rule's pattern are the function's names."""
    monkeypatch.syspath_prepend(str(lambda_dir()))
    from task_processor import api

    contract = _lambda_module("contract")
    served = {f"{method} /{'/'.join(shape)}" for shape, methods in api.ROUTES.items() for method in methods}
    routed = set(blueprint.TASK_ROUTES + blueprint.BOARD_ROUTES)

    def matches(route: str, request: str) -> bool:  # "{name}" in a route key stands for any one segment
        method, path = route.split(" ", 1)
        pattern = "/".join("[^/]+" if part.startswith("{") else re.escape(part) for part in path.split("/"))
        return request.startswith(method + " ") and re.fullmatch(pattern, request.split(" ", 1)[1]) is not None

    assert {s for s in served if not any(matches(route, s) for route in routed)} == set()
    assert {route for route in routed if not any(matches(route, s) for s in served)} == set()
    assert (blueprint.STAGE_VARIABLE_WEBSOCKET_URL, blueprint.STAGE_VARIABLE_REGION) == (
        contract.STAGE_VARIABLE_WEBSOCKET_URL,
        contract.STAGE_VARIABLE_REGION,
    )
    assert (blueprint.NOTIFICATION_SOURCE, blueprint.NOTIFICATION_DETAIL_TYPE) == (
        contract.NOTIFICATION_SOURCE,
        contract.NOTIFICATION_DETAIL_TYPE,
    )
    # each message action the function handles has its own route on the WebSocket API
    assert [r for r in blueprint.WEBSOCKET_ROUTES if not r.startswith("$")] == list(contract.SOCKET_ACTIONS)


def _environment(tmp_path, env: dict[str, str]) -> dict[str, object]:
    stack = load_settings(env, {}, tmp_path).stack
    return next(r for r in blueprint.build(stack) if r.kind == "lambda_function").spec["environment"]


def test_the_function_gets_exactly_the_environment_it_reads(tmp_path):
    contract = _lambda_module("contract")
    environment = _environment(tmp_path, {})
    assert set(environment) == {contract.ENV_DSQL_ENDPOINT, contract.ENV_EVENT_BUS, contract.ENV_STACK, "API_AUTH"}
    assert environment[contract.ENV_API_AUTH] == "iam"


def test_with_jwt_the_function_gets_the_issuer_and_audiences_to_check_tokens_itself(tmp_path):
    contract = _lambda_module("contract")
    jwt = {
        "API_AUTH": "jwt",
        "JWT_ISSUER": "https://issuer.example.com/pool",
        "JWT_AUDIENCE": "app-1, app-2",
        "JWT_LOGIN_URL": "https://login.example.com/",
    }
    environment = _environment(tmp_path, jwt)
    assert {key: environment[key] for key in jwt} == {
        contract.ENV_API_AUTH: "jwt",
        contract.ENV_JWT_ISSUER: "https://issuer.example.com/pool",
        contract.ENV_JWT_AUDIENCE: "app-1,app-2",
        contract.ENV_JWT_LOGIN_URL: "https://login.example.com/",
    }
    del jwt["JWT_LOGIN_URL"]
    assert contract.ENV_JWT_LOGIN_URL not in _environment(tmp_path, jwt)


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
    assert third_party - stdlib <= {"psycopg", "boto3", "botocore"}  # boto3 and botocore come with the runtime


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
