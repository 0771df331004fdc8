"""Every alarm of a region: what it watches, its threshold and why. Pure data; the blueprint
makes them resources and the dashboard draws the same thresholds.

Aurora DSQL publishes to the AWS/AuroraDSQL namespace
(https://docs.aws.amazon.com/aurora-dsql/latest/userguide/cloudwatch-monitoring.html), but
the name of the dimension that carries the cluster id is read two ways: the monitoring page's
table calls it ResourceId, AWS's own console walkthroughs pick ClusterId. An alarm on one name
would stay silent for ever if AWS uses the other, so each DSQL alarm reads the metric under
every name in DSQL_DIMENSIONS and alarms on MAX([...]) of them: the value AWS publishes
whichever reading is right (and not doubled, should it publish both). CloudWatch alarms
cannot use SEARCH, which the dashboard uses for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskmgmt_deploy.core.models import Ref
from taskmgmt_deploy.stack.config import StackConfig

PERIOD = 300
DSQL_NAMESPACE = "AWS/AuroraDSQL"
DSQL_DIMENSIONS = ("ResourceId", "ClusterId")

# A conflict is retried by the function; a steady stream of them means a hot row.
OCC_CONFLICTS_PER_PERIOD = 30
# Commits take a cross-region round trip; averaging a quarter second is trouble.
COMMIT_LATENCY_MS = 250
# A query that hits DSQL's transaction time limit failed its request.
QUERY_TIMEOUTS_PER_PERIOD = 0
# The function's p99 duration near its timeout: the next slow dependency times it out.
NEAR_TIMEOUT = 0.8


@dataclass(frozen=True)
class AlarmDef:
    """One alarm: its logical name, its name's suffix, and the PutMetricAlarm metric fields."""

    logical: str
    name: str
    description: str
    metric: dict[str, Any]  # Namespace/MetricName/Dimensions/Statistic or ExtendedStatistic, or Metrics
    threshold: float
    periods: int = 1
    datapoints: int | None = None


def duration_threshold_ms(stack: StackConfig) -> float:
    return stack.lambda_timeout * 1000 * NEAR_TIMEOUT


def single(namespace: str, metric: str, dimensions: dict[str, Any], statistic: str) -> dict[str, Any]:
    stat = {"ExtendedStatistic": statistic} if statistic.startswith("p") else {"Statistic": statistic}
    return {
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Period": PERIOD,
        **stat,
    }


def dsql_metric(metric: str, cluster_id: Ref | str, statistic: str) -> dict[str, Any]:
    """MAX over the metric read under each candidate dimension name (see the module's docstring)."""
    reads = [
        {
            "Id": f"by_{name.lower()}",
            "MetricStat": {
                "Metric": {
                    "Namespace": DSQL_NAMESPACE,
                    "MetricName": metric,
                    "Dimensions": [{"Name": name, "Value": cluster_id}],
                },
                "Period": PERIOD,
                "Stat": statistic,
            },
            "ReturnData": False,
        }
        for name in DSQL_DIMENSIONS
    ]
    ids = ", ".join(read["Id"] for read in reads)
    return {
        "Metrics": [
            *reads,
            {"Id": "value", "Expression": f"MAX([{ids}])", "Label": f"{metric} {statistic}", "ReturnData": True},
        ]
    }


def function_alarms(stack: StackConfig, fn: str) -> list[AlarmDef]:
    dimensions = {"FunctionName": fn}
    return [
        AlarmDef(
            "function-errors",
            f"{fn}-errors",
            "More than 5 function errors in 5 minutes, twice",
            single("AWS/Lambda", "Errors", dimensions, "Sum"),
            5,
            periods=2,
        ),
        AlarmDef(
            "function-throttles",
            f"{fn}-throttles",
            "The function was throttled",
            single("AWS/Lambda", "Throttles", dimensions, "Sum"),
            0,
        ),
        AlarmDef(
            "function-duration",
            f"{fn}-duration",
            f"The p99 of invocation time exceeded {NEAR_TIMEOUT:.0%} of the timeout, twice",
            single("AWS/Lambda", "Duration", dimensions, "p99"),
            duration_threshold_ms(stack),
            periods=2,
        ),
    ]


def delivery_alarms(bus: str, rule: str, dlq: str, failures: str) -> list[AlarmDef]:
    return [
        AlarmDef(
            "events-dlq-messages",
            f"{dlq}-messages",
            "Events EventBridge could not deliver",
            single("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": dlq}, "Maximum"),
            0,
        ),
        AlarmDef(
            "failed-invocations-messages",
            f"{failures}-messages",
            "Events the function failed on after its retries",
            single("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": failures}, "Maximum"),
            0,
        ),
        AlarmDef(
            "rule-failed-invocations",
            f"{rule}-failed-invocations",
            "EventBridge failed to invoke the function",
            single("AWS/Events", "FailedInvocations", {"EventBusName": bus, "RuleName": rule}, "Sum"),
            0,
        ),
    ]


def broadcast_alarms(dlq: str) -> list[AlarmDef]:
    return [
        AlarmDef(
            "broadcast-dlq-messages",
            f"{dlq}-messages",
            "Notifications EventBridge could not deliver to the function for the live sockets",
            single("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": dlq}, "Maximum"),
            0,
        ),
    ]


def dsql_alarms(cluster_name: str, cluster_id: Ref | str) -> list[AlarmDef]:
    return [
        AlarmDef(
            "dsql-occ-conflicts",
            f"{cluster_name}-occ-conflicts",
            f"More than {OCC_CONFLICTS_PER_PERIOD} transactions aborted by OCC conflicts in 5 minutes, "
            "3 times in a row: a hot row",
            dsql_metric("OccConflicts", cluster_id, "Sum"),
            OCC_CONFLICTS_PER_PERIOD,
            periods=3,
        ),
        AlarmDef(
            "dsql-commit-latency",
            f"{cluster_name}-commit-latency",
            f"Commits took over {COMMIT_LATENCY_MS} ms on average for 15 minutes",
            dsql_metric("CommitLatency", cluster_id, "Average"),
            COMMIT_LATENCY_MS,
            periods=3,
        ),
        AlarmDef(
            "dsql-query-timeouts",
            f"{cluster_name}-query-timeouts",
            "A query hit DSQL's transaction time limit",
            dsql_metric("QueryTimeouts", cluster_id, "Sum"),
            QUERY_TIMEOUTS_PER_PERIOD,
        ),
    ]


def put_metric_alarm_fields(alarm: AlarmDef, topic_arn: Ref | str) -> dict[str, Any]:
    """The PutMetricAlarm parameters (without the name and tags): state changes go to the topic."""
    return {
        "AlarmDescription": alarm.description,
        "ActionsEnabled": True,
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        **alarm.metric,
        "EvaluationPeriods": alarm.periods,
        "DatapointsToAlarm": alarm.datapoints or alarm.periods,
        "Threshold": float(alarm.threshold),
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
