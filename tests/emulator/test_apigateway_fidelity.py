"""API Gateway v2's control plane as AWS documents it (docs/pessimistic-emulation.md, section H).

Each test names its row and checks it through boto3, as the tool sees it.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

REGION = "us-east-1"
LAMBDA = f"arn:aws:lambda:{REGION}:123456789012:function:fn"
JWT = {"Issuer": "https://issuer.example.com", "Audience": ["app"]}


def gateway():
    return boto3.client("apigatewayv2", region_name=REGION)


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"]


def test_a_websocket_api_is_authorized_at_connect_only(aws):
    # H1
    gw = gateway()
    api = gw.create_api(Name="live", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")
    gw.create_route(ApiId=api["ApiId"], RouteKey="$connect", AuthorizationType="AWS_IAM")
    assert refused(gw.create_route, ApiId=api["ApiId"], RouteKey="ping", AuthorizationType="AWS_IAM") == (
        "BadRequestException"
    )
    ping = gw.create_route(ApiId=api["ApiId"], RouteKey="ping", AuthorizationType="NONE")
    assert refused(gw.update_route, ApiId=api["ApiId"], RouteId=ping["RouteId"], AuthorizationType="AWS_IAM") == (
        "BadRequestException"
    )
    http = gw.create_api(Name="tasks", ProtocolType="HTTP")
    gw.create_route(ApiId=http["ApiId"], RouteKey="GET /tasks", AuthorizationType="AWS_IAM")


def test_a_jwt_authorizer_is_for_http_apis_with_an_issuer_an_audience_and_a_token_source(aws):
    # H2
    gw = gateway()
    live = gw.create_api(Name="live", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")
    http = gw.create_api(Name="tasks", ProtocolType="HTTP")
    source = ["$request.header.Authorization"]
    jwt = {"AuthorizerType": "JWT", "Name": "jwt"}
    assert refused(gw.create_authorizer, ApiId=live["ApiId"], IdentitySource=source, JwtConfiguration=JWT, **jwt) == (
        "BadRequestException"
    )
    for config in ({"Issuer": JWT["Issuer"]}, {"Audience": JWT["Audience"]}):
        assert refused(
            gw.create_authorizer, ApiId=http["ApiId"], IdentitySource=source, JwtConfiguration=config, **jwt
        ) == ("BadRequestException")
    assert refused(gw.create_authorizer, ApiId=http["ApiId"], IdentitySource=[], JwtConfiguration=JWT, **jwt) == (
        "BadRequestException"
    )
    made = gw.create_authorizer(ApiId=http["ApiId"], IdentitySource=source, JwtConfiguration=JWT, **jwt)
    assert [a["AuthorizerId"] for a in gw.get_authorizers(ApiId=http["ApiId"])["Items"]] == [made["AuthorizerId"]]


def test_access_logs_go_to_an_existing_log_group_named_by_its_arn_without_the_star(aws):
    # H3
    gw, logs = gateway(), boto3.client("logs", region_name=REGION)
    api = gw.create_api(Name="tasks", ProtocolType="HTTP")["ApiId"]
    group = f"arn:aws:logs:{REGION}:123456789012:log-group:/aws/lambda/fn"
    settings = {"DestinationArn": group, "Format": "$context.requestId"}
    assert refused(gw.create_stage, ApiId=api, StageName="$default", AccessLogSettings=settings) == (
        "BadRequestException"
    )  # the group does not exist yet
    logs.create_log_group(logGroupName="/aws/lambda/fn")
    for bad in ({**settings, "DestinationArn": group + ":*"}, {**settings, "Format": ""}):
        assert refused(gw.create_stage, ApiId=api, StageName="$default", AccessLogSettings=bad) == (
            "BadRequestException"
        )
    gw.create_stage(ApiId=api, StageName="$default", AccessLogSettings=settings)
    other = {**settings, "DestinationArn": group.replace(REGION, "us-west-2")}
    assert refused(gw.update_stage, ApiId=api, StageName="$default", AccessLogSettings=other) == ("BadRequestException")


def test_lists_come_in_pages_of_five_and_update_stage_changes_only_what_it_names(aws):
    # H4
    gw = gateway()
    for n in range(7):
        gw.create_api(Name=f"api-{n}", ProtocolType="HTTP")
    first = gw.get_apis(MaxResults="100")
    assert len(first["Items"]) == 5 and first["NextToken"]
    rest = gw.get_apis(NextToken=first["NextToken"])
    assert len(rest["Items"]) == 2 and "NextToken" not in rest
    every = [api for page in gw.get_paginator("get_apis").paginate() for api in page["Items"]]
    assert sorted(api["Name"] for api in every) == [f"api-{n}" for n in range(7)]
    api = every[0]["ApiId"]
    gw.create_stage(
        ApiId=api,
        StageName="$default",
        AutoDeploy=True,
        DefaultRouteSettings={"ThrottlingBurstLimit": 10, "ThrottlingRateLimit": 5.0},
    )
    gw.update_stage(ApiId=api, StageName="$default", StageVariables={"region": REGION})
    stage = gw.get_stage(ApiId=api, StageName="$default")
    assert stage["StageVariables"] == {"region": REGION} and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 10


def test_stage_variables_take_only_the_documented_characters(aws):
    # H5
    gw = gateway()
    api = gw.create_api(Name="tasks", ProtocolType="HTTP")["ApiId"]
    url = "wss://abc123.execute-api.us-east-1.amazonaws.com/live"
    for bad in ({"web-socket": url}, {"websocketUrl": url + " "}, {"websocketUrl": "a" * 2049}, {"x": "<b>"}):
        assert refused(gw.create_stage, ApiId=api, StageName="$default", StageVariables=bad) == "BadRequestException"
    gw.create_stage(ApiId=api, StageName="$default", StageVariables={"websocketUrl": url, "region": REGION})
    assert gw.get_stage(ApiId=api, StageName="$default")["StageVariables"]["websocketUrl"] == url
