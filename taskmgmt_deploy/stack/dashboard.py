"""The CloudWatch dashboard body: Lambda, EventBridge (the task rule and the broadcast rule's
failures), queues, DSQL, the HTTP API and the WebSocket API for both regions,
with the alarms' thresholds drawn on the metrics they watch (stack/alarms.py).

The APIs' widgets use the ApiId dimension, which API Gateway publishes without detailed
metrics: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html
and https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-logging.html

DSQL widgets use SEARCH expressions on the cluster id rather than a fixed dimension: the
documentation and AWS's own walkthroughs disagree on the dimension's name (ResourceId or
ClusterId), and a search matches the id whatever the dimension is called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.core.models import Ref, Template
from taskmgmt_deploy.stack import alarms
from taskmgmt_deploy.stack.config import StackConfig

WIDTH, HEIGHT = 8, 6
ROWS = 3  # per region


def dashboard_body(
    stack: StackConfig, cluster_ids: Mapping[str, Ref], api_ids: Mapping[str, tuple[Ref, Ref]]
) -> dict[str, Any]:
    """api_ids: each region's (HTTP API id, WebSocket API id)."""
    fn = stack.name("task-processor")
    bus, rule = stack.name("task-events"), stack.name("task-processing")
    broadcast = stack.name("broadcast")
    queues = (stack.name("task-events-dlq"), stack.name("task-processor-failures"), stack.name("broadcast-dlq"))
    widgets: list[dict[str, Any]] = []
    for row, region in enumerate(stack.regions):
        y = row * HEIGHT * ROWS
        http, websocket = api_ids[region]
        widgets += [
            _metrics(
                0,
                y,
                f"Function {region}",
                region,
                "Sum",
                [
                    ["AWS/Lambda", "Invocations", "FunctionName", fn],
                    ["AWS/Lambda", "Errors", "FunctionName", fn],
                    ["AWS/Lambda", "Throttles", "FunctionName", fn],
                ],
            ),
            _metrics(
                WIDTH,
                y,
                f"Function duration {region} (ms)",
                region,
                "Maximum",
                [
                    ["AWS/Lambda", "Duration", "FunctionName", fn, {"stat": "p50", "label": "p50"}],
                    ["AWS/Lambda", "Duration", "FunctionName", fn, {"stat": "p99", "label": "p99"}],
                ],
                thresholds={"p99 alarm": alarms.duration_threshold_ms(stack)},
            ),
            _metrics(
                WIDTH * 2,
                y,
                f"Task events {region}",
                region,
                "Sum",
                [
                    ["AWS/Events", "MatchedEvents", "EventBusName", bus, "RuleName", rule],
                    ["AWS/Events", "Invocations", "EventBusName", bus, "RuleName", rule],
                    ["AWS/Events", "FailedInvocations", "EventBusName", bus, "RuleName", rule],
                    ["AWS/Events", "FailedInvocations", "EventBusName", bus, "RuleName", broadcast],
                ],
            ),
            _metrics(
                0,
                y + HEIGHT,
                f"Failure queues {region}",
                region,
                "Maximum",
                [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q] for q in queues],
            ),
            _dsql(
                WIDTH,
                y + HEIGHT,
                f"DSQL transactions {region}",
                region,
                cluster_ids[region],
                [("TotalTransactions", "Sum"), ("OccConflicts", "Sum"), ("QueryTimeouts", "Sum")],
                thresholds={"OCC conflicts alarm": alarms.OCC_CONFLICTS_PER_PERIOD},
            ),
            _dsql(
                WIDTH * 2,
                y + HEIGHT,
                f"DSQL commit latency {region} (ms)",
                region,
                cluster_ids[region],
                [("CommitLatency", "Average")],
                thresholds={"commit latency alarm": alarms.COMMIT_LATENCY_MS},
            ),
            _metrics(
                0,
                y + HEIGHT * 2,
                f"HTTP API {region}",
                region,
                "Sum",
                [["AWS/ApiGateway", name, "ApiId", http] for name in ("Count", "4xx", "5xx")],
            ),
            _metrics(
                WIDTH,
                y + HEIGHT * 2,
                f"HTTP API latency {region} (ms)",
                region,
                "p99",
                [
                    ["AWS/ApiGateway", "Latency", "ApiId", http, {"stat": "p50", "label": "p50"}],
                    ["AWS/ApiGateway", "Latency", "ApiId", http, {"stat": "p99", "label": "p99"}],
                    ["AWS/ApiGateway", "IntegrationLatency", "ApiId", http, {"stat": "p99", "label": "function p99"}],
                ],
            ),
            _metrics(
                WIDTH * 2,
                y + HEIGHT * 2,
                f"Live connections {region}",
                region,
                "Sum",
                [
                    ["AWS/ApiGateway", name, "ApiId", websocket]
                    for name in ("ConnectCount", "MessageCount", "ClientError", "IntegrationError", "ExecutionError")
                ],
            ),
        ]
    return {"widgets": widgets}


def _metrics(
    x: int,
    y: int,
    title: str,
    region: str,
    stat: str,
    metrics: list[list[Any]],
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    properties = {"title": title, "region": region, "stat": stat, "period": 300, "view": "timeSeries"}
    return _widget(x, y, {**properties, "metrics": metrics, **_annotations(thresholds)})


def _annotations(thresholds: Mapping[str, float] | None) -> dict[str, Any]:
    """Horizontal lines at the alarms' thresholds."""
    if not thresholds:
        return {}
    return {"annotations": {"horizontal": [{"label": k, "value": float(v)} for k, v in thresholds.items()]}}


def _widget(x: int, y: int, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": WIDTH, "height": HEIGHT, "properties": properties}


def _dsql(
    x: int,
    y: int,
    title: str,
    region: str,
    cluster_id: Ref,
    series: list[tuple[str, str]],
    thresholds: Mapping[str, float],
) -> dict[str, Any]:
    metrics = [
        [
            {
                "id": f"m{i}",
                "label": name,
                "expression": Template(
                    'SEARCH(\'Namespace="AWS/AuroraDSQL" MetricName="' + name + '" "{0}"\', \'' + stat + "', 300)",
                    (cluster_id,),
                ),
            }
        ]
        for i, (name, stat) in enumerate(series)
    ]
    # no widget-wide "stat": each SEARCH expression carries its own
    properties = {"title": title, "region": region, "period": 300, "view": "timeSeries", "metrics": metrics}
    return _widget(x, y, {**properties, **_annotations(thresholds)})
