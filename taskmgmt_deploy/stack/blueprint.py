"""The whole stack as data: StackConfig -> ordered list of Resources. Pure; no AWS.

Dependencies are not listed by hand: they follow from the Refs a resource's spec uses
(plus `after` where only ordering matters), and the engine derives the order from them.
"""

from __future__ import annotations

from typing import Any

from taskmgmt_deploy.core.models import Ref, Resource, resource_key
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

RULE_RETRY = {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}
ASYNC_RETRIES = 2
ASYNC_MAX_AGE = 3600
QUEUE_ATTRIBUTES = {"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"}

PACKAGE = resource_key("lambda_package", "task-processor", None)
ROLE = resource_key("iam_role", "task-processor", None)
POLICY = resource_key("iam_role_policy", "task-processor", None)
PEERING = resource_key("dsql_peering", "clusters", None)


def function_name(stack: StackConfig) -> str:
    return stack.name("task-processor")


def role_name(stack: StackConfig) -> str:
    return stack.name("task-processor-role")


def cluster_key(stack: StackConfig, region: str) -> str:
    side = "primary" if region == stack.primary_region else "secondary"
    return resource_key("dsql_cluster", side, region)


def build(stack: StackConfig) -> list[Resource]:
    resources = [_package(), _role(stack), *_clusters(stack)]
    for region in stack.regions:
        resources += _regional(stack, region)
    resources += [_policy(stack), _dashboard(stack), _schema(stack)]
    return resources


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
    primary = _res(stack, "dsql_cluster", "primary", stack.primary_region, stack.name("primary"), common)
    secondary = _res(
        stack,
        "dsql_cluster",
        "secondary",
        stack.secondary_region,
        stack.name("secondary"),
        {**common, "peer_arn": Ref(primary_key, "arn")},
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
        _res(stack, "sqs_queue", "events-dlq", region, dlq, {"attributes": QUEUE_ATTRIBUTES}),
        _res(stack, "sqs_queue", "failed-invocations", region, failures, {"attributes": QUEUE_ATTRIBUTES}),
        _res(stack, "event_bus", "task-events", region, bus),
        _res(
            stack,
            "log_group",
            "task-processor",
            region,
            f"/aws/lambda/{fn}",
            {"retention_days": stack.log_retention_days},
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
    return resources + _alarms(stack, region, fn, bus, rule, dlq, failures)


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
            },
            "logging": {
                "LogFormat": "JSON",
                "LogGroup": Ref(logs_key, "name"),
                "ApplicationLogLevel": "INFO",
                "SystemLogLevel": "WARN",
            },
        },
    )


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


def _alarm(
    stack: StackConfig,
    region: str,
    logical: str,
    name: str,
    description: str,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    statistic: str,
    threshold: float,
    periods: int = 1,
) -> Resource:
    alarm = {
        "AlarmDescription": description,
        "ActionsEnabled": True,
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Statistic": statistic,
        "Period": 300,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods,
        "Threshold": float(threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    return _res(stack, "metric_alarm", logical, region, name, {"alarm": alarm})


def _alarms(stack: StackConfig, region: str, fn: str, bus: str, rule: str, dlq: str, failures: str) -> list[Resource]:
    near_timeout_ms = stack.lambda_timeout * 1000 * 0.8
    return [
        _alarm(
            stack,
            region,
            "function-errors",
            f"{fn}-errors",
            "More than 5 function errors in 5 minutes, twice",
            "AWS/Lambda",
            "Errors",
            {"FunctionName": fn},
            "Sum",
            5,
            periods=2,
        ),
        _alarm(
            stack,
            region,
            "function-throttles",
            f"{fn}-throttles",
            "The function was throttled",
            "AWS/Lambda",
            "Throttles",
            {"FunctionName": fn},
            "Sum",
            0,
        ),
        _alarm(
            stack,
            region,
            "function-duration",
            f"{fn}-duration",
            "An invocation took over 80% of the timeout",
            "AWS/Lambda",
            "Duration",
            {"FunctionName": fn},
            "Maximum",
            near_timeout_ms,
        ),
        _alarm(
            stack,
            region,
            "events-dlq-messages",
            f"{dlq}-messages",
            "Events EventBridge could not deliver",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": dlq},
            "Maximum",
            0,
        ),
        _alarm(
            stack,
            region,
            "failed-invocations-messages",
            f"{failures}-messages",
            "Events the function failed on after its retries",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            {"QueueName": failures},
            "Maximum",
            0,
        ),
        _alarm(
            stack,
            region,
            "rule-failed-invocations",
            f"{rule}-failed-invocations",
            "EventBridge failed to invoke the function",
            "AWS/Events",
            "FailedInvocations",
            {"EventBusName": bus, "RuleName": rule},
            "Sum",
            0,
        ),
    ]


def _dashboard(stack: StackConfig) -> Resource:
    from taskmgmt_deploy.stack.dashboard import dashboard_body

    cluster_ids = {region: Ref(cluster_key(stack, region), "id") for region in stack.regions}
    return _res(
        stack,
        "dashboard",
        "overview",
        stack.primary_region,
        stack.name("dashboard"),
        {"body": dashboard_body(stack, cluster_ids)},
        tagged=False,
    )
