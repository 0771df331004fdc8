"""The HTTP and WebSocket APIs as deployed: auth per API_AUTH, CORS, the stage the function reads,
the invoke permissions, and a change of API_AUTH made in place."""

from __future__ import annotations

import json

import boto3

from taskmgmt_deploy.stack import blueprint

STACK = "task-mgmt-dev"
REGIONS = ("us-east-1", "us-west-2")
ISSUER = "https://issuer.example.com/pool"
ORIGIN = "https://app.example.com"


def apis(region: str) -> dict[str, dict]:
    gateway = boto3.client("apigatewayv2", region_name=region)
    found = {}
    for api in (a for page in gateway.get_paginator("get_apis").paginate() for a in page["Items"]):
        routes = [r for page in gateway.get_paginator("get_routes").paginate(ApiId=api["ApiId"]) for r in page["Items"]]
        found[api["Name"]] = {
            **api,
            "routes": {r["RouteKey"]: r for r in routes},
            "authorizers": gateway.get_authorizers(ApiId=api["ApiId"])["Items"],
            "stages": {s["StageName"]: s for s in gateway.get_stages(ApiId=api["ApiId"])["Items"]},
        }
    return found


def test_jwt_guards_every_task_route_leaves_the_board_open_and_iam_replaces_it_in_place(
    aws, runtime, cli, calls, monkeypatch
):
    for key, value in {
        "API_AUTH": "jwt",
        "JWT_ISSUER": ISSUER,
        "JWT_AUDIENCE": "app-1,app-2",
        "CORS_ORIGINS": ORIGIN,
        "API_THROTTLE_BURST": "20",
        "API_THROTTLE_RATE": "10",
    }.items():
        monkeypatch.setenv(key, value)
    deployed = cli("deploy", "--yes")
    assert deployed.code == 0, deployed.err
    outputs = json.loads(cli("outputs", "--json").out)["regions"]
    for region in REGIONS:
        found = apis(region)
        http, live = found[f"{STACK}-tasks"], found[f"{STACK}-live"]
        (authorizer,) = http["authorizers"]
        assert authorizer["JwtConfiguration"] == {"Issuer": ISSUER, "Audience": ["app-1", "app-2"]}
        assert authorizer["IdentitySource"] == ["$request.header.Authorization"]
        for key in blueprint.TASK_ROUTES:
            route = http["routes"][key]
            assert (route["AuthorizationType"], route["AuthorizerId"]) == ("JWT", authorizer["AuthorizerId"]), key
        assert {k: http["routes"][k]["AuthorizationType"] for k in blueprint.BOARD_ROUTES} == dict.fromkeys(
            blueprint.BOARD_ROUTES, "NONE"
        )
        assert set(http["routes"]) == set(blueprint.TASK_ROUTES + blueprint.BOARD_ROUTES)
        assert http["CorsConfiguration"]["AllowOrigins"] == [ORIGIN]
        # WebSocket APIs have no JWT authorizer: $connect is open at the gateway, the function checks ?token=
        assert {k: r["AuthorizationType"] for k, r in live["routes"].items()} == dict.fromkeys(
            blueprint.WEBSOCKET_ROUTES, "NONE"
        )
        assert live["RouteSelectionExpression"] == "$request.body.action"
        stage = http["stages"]["$default"]
        assert stage["StageVariables"] == {"websocketUrl": outputs[region]["websocket_url"], "region": region}
        assert stage["AutoDeploy"] is True
        assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 20
        assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == 10.0
        group = f"arn:aws:logs:{region}:123456789012:log-group:/aws/lambda/{STACK}-task-processor"
        assert stage["AccessLogSettings"]["DestinationArn"] == group  # without ':*' (H3)
        assert set(live["stages"]) == {"live"}
        policy = boto3.client("lambda", region_name=region).get_policy(FunctionName=f"{STACK}-task-processor")
        sources = {
            s["Sid"]: s["Condition"]["ArnLike"]["AWS:SourceArn"]
            for s in json.loads(policy["Policy"])["Statement"]
            if s["Principal"] == {"Service": "apigateway.amazonaws.com"}
        }
        assert sources == {
            f"{STACK}-tasks-invoke": f"arn:aws:execute-api:{region}:123456789012:{http['ApiId']}/*",
            f"{STACK}-live-invoke": f"arn:aws:execute-api:{region}:123456789012:{live['ApiId']}/*",
        }

    refused = cli("smoke")  # against AWS with jwt and no token: one line, exit 2
    assert refused.code == 2 and "--token or SMOKE_TOKEN" in refused.err
    assert len(refused.err.strip().splitlines()) == 1

    for key in ("API_AUTH", "JWT_ISSUER", "JWT_AUDIENCE", "CORS_ORIGINS"):
        monkeypatch.delenv(key)
    calls.clear()
    changed = cli("deploy", "--yes")
    assert changed.code == 0, changed.err
    assert "created 0, updated 6," in changed.err  # both APIs and the function, in each region (API_AUTH)
    assert {service for service, _ in calls.mutating()} == {"apigatewayv2", "lambda"}
    for region in REGIONS:
        found = apis(region)
        http, live = found[f"{STACK}-tasks"], found[f"{STACK}-live"]
        assert http["authorizers"] == [] and "CorsConfiguration" not in http
        assert {r["AuthorizationType"] for r in http["routes"].values()} == {"AWS_IAM"}
        assert live["routes"]["$connect"]["AuthorizationType"] == "AWS_IAM"
        assert {r["AuthorizationType"] for k, r in live["routes"].items() if k != "$connect"} == {"NONE"}
    assert json.loads(cli("status", "--json").out)["healthy"] is True
