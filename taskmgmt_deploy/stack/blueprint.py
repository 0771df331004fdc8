"""The whole stack as data: StackConfig -> ordered list of Resources. Pure; no AWS.

Dependencies are not listed by hand: they follow from the Refs a resource's spec uses
(plus `after` where only ordering matters), and the engine derives the order from them.
"""

from __future__ import annotations

from typing import Any

from taskmgmt_deploy.core.models import Ref, Resource, Template, resource_key
from taskmgmt_deploy.stack import alarms
from taskmgmt_deploy.stack.config import StackConfig

# The function's contract with lambda/ (pinned by tests/unit/test_contract.py).
RUNTIME = "python3.13"
HANDLER = "task_processor.handler.lambda_handler"
ARCHITECTURE = "arm64"
EVENT_SOURCE = "task.management"
TASK_DETAIL_TYPES = ("Task Created", "Task Updated", "Task Completed")
ENV_DSQL_ENDPOINT = "DSQL_ENDPOINT"
ENV_EVENT_BUS = "EVENT_BUS_NAME"
ENV_STACK = "TASKMGMT_STACK"
ENV_API_AUTH = "API_AUTH"
ENV_JWT_ISSUER = "JWT_ISSUER"
ENV_JWT_AUDIENCE = "JWT_AUDIENCE"
ENV_JWT_LOGIN_URL = "JWT_LOGIN_URL"

RULE_RETRY = {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}
ASYNC_RETRIES = 2
ASYNC_MAX_AGE = 3600
QUEUE_ATTRIBUTES = {"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"}

PACKAGE = resource_key("lambda_package", "task-processor", None)
ROLE = resource_key("iam_role", "task-processor", None)
POLICY = resource_key("iam_role_policy", "task-processor", None)
PEERING = resource_key("dsql_peering", "clusters", None)
MANAGE_CONNECTIONS = resource_key("iam_role_policy", "manage-connections", None)

# The HTTP API's routes: every route the function serves (lambda/task_processor/api.py, pinned by
# tests/unit/test_contract.py) and the board, which is public with API_AUTH=jwt.
TASK_ROUTES = (
    "GET /health",
    "GET /tasks",
    "POST /tasks",
    "GET /tasks/{task_id}",
    "PUT /tasks/{task_id}",
    "PATCH /tasks/{task_id}",
    "DELETE /tasks/{task_id}",
    "POST /tasks/{task_id}/complete",
)
BOARD_ROUTES = ("GET /", "GET /board/{file}")
SOCKET_ACTIONS = ("subscribe", "unsubscribe", "ping")  # the function's message actions
WEBSOCKET_ROUTES = ("$connect", "$disconnect", *SOCKET_ACTIONS, "$default")
WEBSOCKET_STAGE = "live"
HTTP_STAGE = "$default"
PAYLOAD_FORMAT = "2.0"
NOTIFICATION_SOURCE = "task.management.notifications"
NOTIFICATION_DETAIL_TYPE = "Task Notification"
STAGE_VARIABLE_WEBSOCKET_URL = "websocketUrl"
STAGE_VARIABLE_REGION = "region"
CORS_HEADERS = ("authorization", "content-type", "if-match", "x-amz-date", "x-amz-security-token")
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime",'
    '"routeKey":"$context.routeKey","status":"$context.status","protocol":"$context.protocol",'
    '"responseLength":"$context.responseLength","latency":"$context.responseLatency",'
    '"integrationError":"$context.integrationErrorMessage","authorizerError":"$context.authorizer.error"}'
)
KMS_KEY = "kms_key:customer-key@{region}"


def function_name(stack: StackConfig) -> str:
    return stack.name("task-processor")


def role_name(stack: StackConfig) -> str:
    return stack.name("task-processor-role")


def side(stack: StackConfig, region: str) -> str:
    """Which cluster lives in the region."""
    return "primary" if region == stack.primary_region else "secondary"


def cluster_key(stack: StackConfig, region: str) -> str:
    return resource_key("dsql_cluster", side(stack, region), region)


def build(stack: StackConfig) -> list[Resource]:
    resources = [_package(), *_kms_keys(stack), _role(stack), *_clusters(stack)]
    for region in stack.regions:
        resources += _regional(stack, region)
    resources += [_policy(stack), _manage_connections(stack), _dashboard(stack), *_cluster_policies(stack)]
    return [*resources, _schema(stack)]


def _kms_keys(stack: StackConfig) -> list[Resource]:
    """The customer managed key, looked up in each region (KMS keys are regional). It is the
    user's: taskmgmt reads it and never changes or deletes it."""
    if not stack.kms_key:
        return []
    return [
        _res(stack, "kms_key", "customer-key", region, stack.kms_key, {"key_id": stack.kms_key}, tagged=False)
        for region in stack.regions
    ]


def _kms(stack: StackConfig, region: str) -> dict[str, Any]:
    """The spec field of a resource encrypted with the customer key; nothing when none is configured."""
    return {"kms_key_arn": Ref(KMS_KEY.format(region=region), "arn")} if stack.kms_key else {}


def _cluster_policies(stack: StackConfig) -> list[Resource]:
    """Who may connect to each cluster, put once both are ACTIVE (DSQL_CLUSTER_POLICY)."""
    if not stack.cluster_policy:
        return []
    policies = []
    for region in stack.regions:
        cluster = cluster_key(stack, region)
        policies.append(
            _res(
                stack,
                "dsql_cluster_policy",
                side(stack, region),
                region,
                stack.name(side(stack, region)),
                {"cluster_id": Ref(cluster, "id"), "cluster_arn": Ref(cluster, "arn"), "role_arn": Ref(ROLE, "arn")},
                after=(PEERING,),
            )
        )
    return policies


def _schema(stack: StackConfig) -> Resource:
    """Migrations run once both clusters are ACTIVE, on the primary (one database)."""
    return Resource(
        kind="db_schema",
        logical="tasks",
        region=None,
        name="tasks",
        spec={
            "endpoint": Ref(cluster_key(stack, stack.primary_region), "endpoint"),
            "region": stack.primary_region,
            "role_arn": Ref(ROLE, "arn"),
        },
        after=(PEERING,),
    )


def _tags(stack: StackConfig, kind: str, logical: str, region: str | None) -> dict[str, str]:
    return {**stack.tags(), "taskmgmt:key": resource_key(kind, logical, region)}


def _res(
    stack: StackConfig,
    kind: str,
    logical: str,
    region: str | None,
    name: str,
    spec: dict[str, Any] | None = None,
    after: tuple[str, ...] = (),
    tagged: bool = True,
) -> Resource:
    spec = dict(spec or {})
    if tagged:
        spec["tags"] = _tags(stack, kind, logical, region)
    return Resource(kind=kind, logical=logical, region=region, name=name, spec=spec, after=after)


def _package() -> Resource:
    return Resource(kind="lambda_package", logical="task-processor", region=None, name="task-processor")


def _role(stack: StackConfig) -> Resource:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    return _res(
        stack,
        "iam_role",
        "task-processor",
        None,
        role_name(stack),
        {"trust_policy": trust, "description": f"taskmgmt task processor ({stack.stack_name})"},
    )


def _clusters(stack: StackConfig) -> list[Resource]:
    primary_key = cluster_key(stack, stack.primary_region)
    secondary_key = cluster_key(stack, stack.secondary_region)
    common = {"witness_region": stack.witness_region, "deletion_protection": stack.deletion_protection}
    primary = _res(
        stack,
        "dsql_cluster",
        "primary",
        stack.primary_region,
        stack.name("primary"),
        {**common, **_kms(stack, stack.primary_region)},
    )
    secondary = _res(
        stack,
        "dsql_cluster",
        "secondary",
        stack.secondary_region,
        stack.name("secondary"),
        {**common, "peer_arn": Ref(primary_key, "arn"), **_kms(stack, stack.secondary_region)},
    )
    peering = _res(
        stack,
        "dsql_peering",
        "clusters",
        None,
        stack.name("clusters"),
        {
            "primary_id": Ref(primary_key, "id"),
            "secondary_id": Ref(secondary_key, "id"),
            "secondary_arn": Ref(secondary_key, "arn"),
            "primary_region": stack.primary_region,
            "secondary_region": stack.secondary_region,
            "witness_region": stack.witness_region,
        },
    )
    return [primary, secondary, peering]


def _key(kind: str, logical: str, region: str | None) -> str:
    return resource_key(kind, logical, region)


def _regional(stack: StackConfig, region: str) -> list[Resource]:
    fn = function_name(stack)
    bus = stack.name("task-events")
    rule = stack.name("task-processing")
    dlq = stack.name("task-events-dlq")
    failures = stack.name("task-processor-failures")
    k = {
        name: _key(kind, logical, region)
        for name, (kind, logical) in {
            "dlq": ("sqs_queue", "events-dlq"),
            "failures": ("sqs_queue", "failed-invocations"),
            "bus": ("event_bus", "task-events"),
            "logs": ("log_group", "task-processor"),
            "fn": ("lambda_function", "task-processor"),
            "rule": ("event_rule", "task-processing"),
            "permission": ("lambda_permission", "task-processing"),
            "dlq_policy": ("sqs_queue_policy", "events-dlq"),
        }.items()
    }
    resources = [
        *_notifications(stack, region),
        _res(stack, "sqs_queue", "events-dlq", region, dlq, {"attributes": QUEUE_ATTRIBUTES}),
        _res(stack, "sqs_queue", "failed-invocations", region, failures, {"attributes": QUEUE_ATTRIBUTES}),
        _res(stack, "event_bus", "task-events", region, bus),
        _res(
            stack,
            "log_group",
            "task-processor",
            region,
            f"/aws/lambda/{fn}",
            {"retention_days": stack.log_retention_days, **_kms(stack, region)},
        ),
        _function(stack, region, k["logs"], bus),
        _res(
            stack,
            "lambda_invoke_config",
            "task-processor",
            region,
            fn,
            {
                "function_name": fn,
                "max_retries": ASYNC_RETRIES,
                "max_age": ASYNC_MAX_AGE,
                "on_failure_arn": Ref(k["failures"], "arn"),
            },
            after=(k["fn"], POLICY),
            tagged=False,
        ),
        _res(
            stack,
            "event_rule",
            "task-processing",
            region,
            rule,
            {
                "bus_name": bus,
                "description": "Task events for the task processor",
                "pattern": {"source": [EVENT_SOURCE], "detail-type": list(TASK_DETAIL_TYPES)},
            },
            after=(k["bus"],),
        ),
        _res(
            stack,
            "sqs_queue_policy",
            "events-dlq",
            region,
            dlq,
            {
                "queue_name": dlq,
                "queue_url": Ref(k["dlq"], "url"),
                "policy": _dlq_policy(Ref(k["dlq"], "arn"), Ref(k["rule"], "arn")),
            },
            tagged=False,
        ),
        _res(
            stack,
            "lambda_permission",
            "task-processing",
            region,
            stack.name("task-processing-invoke"),
            {"function_name": fn, "principal": "events.amazonaws.com", "source_arn": Ref(k["rule"], "arn")},
            after=(k["fn"],),
            tagged=False,
        ),
        _res(
            stack,
            "event_target",
            "task-processor",
            region,
            "task-processor",
            {
                "rule_name": rule,
                "bus_name": bus,
                "function_arn": Ref(k["fn"], "arn"),
                "dead_letter_arn": Ref(k["dlq"], "arn"),
                "retry_policy": RULE_RETRY,
            },
            after=(k["rule"], k["permission"], k["dlq_policy"]),
            tagged=False,
        ),
    ]
    if stack.reserved_concurrency:
        resources.append(
            _res(
                stack,
                "lambda_concurrency",
                "task-processor",
                region,
                fn,
                {"function_name": fn, "reserved": stack.reserved_concurrency},
                after=(k["fn"],),
                tagged=False,
            )
        )
    return resources + _apis(stack, region) + _broadcast(stack, region) + _alarms(stack, region)


def _function(stack: StackConfig, region: str, logs_key: str, bus: str) -> Resource:
    return _res(
        stack,
        "lambda_function",
        "task-processor",
        region,
        function_name(stack),
        {
            "runtime": RUNTIME,
            "handler": HANDLER,
            "architectures": [ARCHITECTURE],
            "memory": stack.lambda_memory,
            "timeout": stack.lambda_timeout,
            "description": f"taskmgmt task processor ({stack.stack_name})",
            "role_arn": Ref(ROLE, "arn"),
            "package_path": Ref(PACKAGE, "path"),
            "code_sha256": Ref(PACKAGE, "code_sha256"),
            "environment": {
                ENV_DSQL_ENDPOINT: Ref(cluster_key(stack, region), "endpoint"),
                ENV_EVENT_BUS: bus,
                ENV_STACK: stack.stack_name,
                **_auth_environment(stack),
            },
            "logging": {
                "LogFormat": "JSON",
                "LogGroup": Ref(logs_key, "name"),
                "ApplicationLogLevel": "INFO",
                "SystemLogLevel": "WARN",
            },
        },
    )


def _auth_environment(stack: StackConfig) -> dict[str, str]:
    """What $connect needs to check a token itself (WebSocket APIs have no JWT authorizer)."""
    env = {ENV_API_AUTH: stack.api_auth}
    if stack.api_auth == "jwt":
        env[ENV_JWT_ISSUER] = stack.jwt_issuer or ""
        env[ENV_JWT_AUDIENCE] = ",".join(stack.jwt_audience)
        if stack.jwt_login_url:
            env[ENV_JWT_LOGIN_URL] = stack.jwt_login_url
    return env


def _dlq_policy(queue_arn: Ref, rule_arn: Ref) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheTaskProcessingRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


def _policy(stack: StackConfig) -> Resource:
    def each(kind: str, logical: str, field: str = "arn") -> list[Ref]:
        return [Ref(_key(kind, logical, region), field) for region in stack.regions]

    clusters = [Ref(cluster_key(stack, region), "arn") for region in stack.regions]
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ConnectAsTheAppRole", "Effect": "Allow", "Action": "dsql:DbConnect", "Resource": clusters},
            {
                "Sid": "PublishNotifications",
                "Effect": "Allow",
                "Action": "events:PutEvents",
                "Resource": each("event_bus", "task-events"),
            },
            {
                "Sid": "WriteOwnLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": each("log_group", "task-processor"),
            },
            {
                "Sid": "ReportFailedInvocations",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": each("sqs_queue", "failed-invocations"),
            },
        ],
    }
    return _res(
        stack,
        "iam_role_policy",
        "task-processor",
        None,
        stack.name("task-processor-policy"),
        {"role_name": role_name(stack), "document": document},
        after=(ROLE,),
        tagged=False,
    )


def alarm_definitions(stack: StackConfig, region: str, cluster_id: Ref | str) -> list[alarms.AlarmDef]:
    """The function's, the delivery path's and the region's cluster's alarms."""
    fn = function_name(stack)
    bus, rule = stack.name("task-events"), stack.name("task-processing")
    dlq, failures = stack.name("task-events-dlq"), stack.name("task-processor-failures")
    return [
        *alarms.function_alarms(stack, fn),
        *alarms.delivery_alarms(bus, rule, dlq, failures),
        *alarms.broadcast_alarms(stack.name("broadcast-dlq")),
        *alarms.dsql_alarms(stack.name(side(stack, region)), cluster_id),
    ]


def _alarms(stack: StackConfig, region: str) -> list[Resource]:
    """Each alarm notifies the region's topic."""
    topic = Ref(_key("sns_topic", "alarms", region), "arn")
    defs = alarm_definitions(stack, region, Ref(cluster_key(stack, region), "id"))
    return [
        _res(stack, "metric_alarm", a.logical, region, a.name, {"alarm": alarms.put_metric_alarm_fields(a, topic)})
        for a in defs
    ]


def _notifications(stack: StackConfig, region: str) -> list[Resource]:
    """The region's alarm topic, encrypted with the customer key if one is configured, and the
    email subscription if one is configured."""
    topic = _res(stack, "sns_topic", "alarms", region, stack.name("alarms"), _kms(stack, region))
    if not stack.alarm_email:
        return [topic]
    subscription = _res(
        stack,
        "sns_subscription",
        "alarm-email",
        region,
        stack.alarm_email,
        {
            "topic_arn": Ref(topic.key, "arn"),
            "topic_name": topic.name,
            "protocol": "email",
            "endpoint": stack.alarm_email,
        },
        tagged=False,
    )
    return [topic, subscription]


def _dashboard(stack: StackConfig) -> Resource:
    from taskmgmt_deploy.stack.dashboard import dashboard_body

    cluster_ids = {region: Ref(cluster_key(stack, region), "id") for region in stack.regions}
    api_ids = {
        region: (Ref(http_api_key(region), "id"), Ref(websocket_api_key(region), "id")) for region in stack.regions
    }
    return _res(
        stack,
        "dashboard",
        "overview",
        stack.primary_region,
        stack.name("dashboard"),
        {"body": dashboard_body(stack, cluster_ids, api_ids)},
        tagged=False,
    )


def http_api_key(region: str) -> str:
    return _key("http_api", "tasks", region)


def websocket_api_key(region: str) -> str:
    return _key("websocket_api", "live", region)


def _apis(stack: StackConfig, region: str) -> list[Resource]:
    """The HTTP API and the WebSocket API, whose URL the HTTP API's stage passes to the function
    (stage variables: no cycle function -> APIs -> function). The HTTP API's access logs go to the
    function's log group, made before both with the configured retention (and key): one group per
    region holds each request and what the function did with it, and the deployer's policy names
    no other group. WebSocket access logs would need the account-wide API Gateway logging role."""
    fn = function_name(stack)
    function = {"function_arn": Ref(_key("lambda_function", "task-processor", region), "arn"), "function_name": fn}
    throttle = {"burst": stack.api_throttle_burst, "rate": stack.api_throttle_rate}
    connect = "AWS_IAM" if stack.api_auth == "iam" else "NONE"  # with jwt the function checks ?token=
    live = _res(
        stack,
        "websocket_api",
        "live",
        region,
        stack.name("live"),
        {
            **function,
            "permission_id": stack.name("live-invoke"),
            "route_selection": "$request.body.action",
            "routes": {route: connect if route == "$connect" else "NONE" for route in WEBSOCKET_ROUTES},
            "stage": WEBSOCKET_STAGE,
            "throttle": throttle,
        },
    )
    http = _res(
        stack,
        "http_api",
        "tasks",
        region,
        stack.name("tasks"),
        {
            **function,
            "permission_id": stack.name("tasks-invoke"),
            "payload_format": PAYLOAD_FORMAT,
            "routes": _http_routes(stack),
            **(
                {"authorizer": {"issuer": stack.jwt_issuer, "audience": list(stack.jwt_audience)}}
                if stack.api_auth == "jwt"
                else {}
            ),
            **({"cors": _cors(stack)} if stack.cors_origins else {}),
            "stage": HTTP_STAGE,
            "throttle": throttle,
            "access_log_arn": Ref(_key("log_group", "task-processor", region), "arn"),
            "access_log_format": ACCESS_LOG_FORMAT,
            "stage_variables": {STAGE_VARIABLE_WEBSOCKET_URL: Ref(live.key, "url"), STAGE_VARIABLE_REGION: region},
        },
    )
    return [live, http]


def _http_routes(stack: StackConfig) -> dict[str, str]:
    if stack.api_auth == "iam":
        return dict.fromkeys(TASK_ROUTES + BOARD_ROUTES, "AWS_IAM")
    return {**dict.fromkeys(TASK_ROUTES, "JWT"), **dict.fromkeys(BOARD_ROUTES, "NONE")}


def _cors(stack: StackConfig) -> dict[str, Any]:
    return {
        "AllowOrigins": list(stack.cors_origins),
        "AllowMethods": list(CORS_METHODS),
        "AllowHeaders": list(CORS_HEADERS),
        "ExposeHeaders": ["etag"],
        "MaxAge": 600,
    }


def _broadcast(stack: StackConfig, region: str) -> list[Resource]:
    """The notifications the function puts on its bus, back to the function (which fans them out
    to the sockets): a second rule with its own dead-letter queue."""
    bus, rule, dlq = stack.name("task-events"), stack.name("broadcast"), stack.name("broadcast-dlq")
    k = {
        "dlq": _key("sqs_queue", "broadcast-dlq", region),
        "rule": _key("event_rule", "broadcast", region),
        "permission": _key("lambda_permission", "broadcast", region),
        "dlq_policy": _key("sqs_queue_policy", "broadcast-dlq", region),
    }
    return [
        _res(stack, "sqs_queue", "broadcast-dlq", region, dlq, {"attributes": QUEUE_ATTRIBUTES}),
        _res(
            stack,
            "event_rule",
            "broadcast",
            region,
            rule,
            {
                "bus_name": bus,
                "description": "Task notifications for the live sockets",
                "pattern": {"source": [NOTIFICATION_SOURCE], "detail-type": [NOTIFICATION_DETAIL_TYPE]},
            },
            after=(_key("event_bus", "task-events", region),),
        ),
        _res(
            stack,
            "sqs_queue_policy",
            "broadcast-dlq",
            region,
            dlq,
            {
                "queue_name": dlq,
                "queue_url": Ref(k["dlq"], "url"),
                "policy": _dlq_policy(Ref(k["dlq"], "arn"), Ref(k["rule"], "arn")),
            },
            tagged=False,
        ),
        _res(
            stack,
            "lambda_permission",
            "broadcast",
            region,
            stack.name("broadcast-invoke"),
            {
                "function_name": function_name(stack),
                "principal": "events.amazonaws.com",
                "source_arn": Ref(k["rule"], "arn"),
            },
            after=(_key("lambda_function", "task-processor", region),),
            tagged=False,
        ),
        _res(
            stack,
            "event_target",
            "broadcast",
            region,
            "task-processor",
            {
                "rule_name": rule,
                "bus_name": bus,
                "function_arn": Ref(_key("lambda_function", "task-processor", region), "arn"),
                "dead_letter_arn": Ref(k["dlq"], "arn"),
                "retry_policy": RULE_RETRY,
            },
            after=(k["rule"], k["permission"], k["dlq_policy"]),
            tagged=False,
        ),
    ]


def _manage_connections(stack: StackConfig) -> Resource:
    """The function posts to the sockets of both regions' WebSocket APIs: a policy of its own,
    put once the APIs exist (their ids are in it)."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PostToTheSockets",
                "Effect": "Allow",
                "Action": "execute-api:ManageConnections",
                "Resource": [
                    Template(
                        f"{{0}}/{WEBSOCKET_STAGE}/POST/@connections/*", (Ref(websocket_api_key(r), "execution_arn"),)
                    )
                    for r in stack.regions
                ],
            }
        ],
    }
    return _res(
        stack,
        "iam_role_policy",
        "manage-connections",
        None,
        stack.name("manage-connections"),
        {"role_name": role_name(stack), "document": document},
        after=(ROLE,),
        tagged=False,
    )
