"""CloudWatch alarms (one resource each, per region) and the one dashboard for both regions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none, tag_list

# The alarm settings we manage, by their PutMetricAlarm / DescribeAlarms names.
ALARM_FIELDS = (
    "Namespace",
    "MetricName",
    "Dimensions",
    "Statistic",
    "ExtendedStatistic",
    "Metrics",
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
)


class MetricAlarmStep(AwsStep):
    kind = "metric_alarm"
    reads_in_batches = True  # DescribeAlarms takes up to 100 names: one call per region

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        return self.read_many([(res, record)])[0]

    def read_many(self, items: list[tuple[Resource, Record | None]]) -> list[Observed | None]:
        found: dict[str, dict[str, Any]] = {}
        names = [res.name for res, _ in items]
        cloudwatch = self.aws.get("cloudwatch", items[0][0].region)
        for start in range(0, len(names), 100):
            alarms = cloudwatch.describe_alarms(AlarmNames=names[start : start + 100], AlarmTypes=["MetricAlarm"])[
                "MetricAlarms"
            ]
            found.update({alarm["AlarmName"]: alarm for alarm in alarms})
        return [_alarm_observed(res.name, found.get(res.name)) for res, _ in items]

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"alarm": _comparable(spec["alarm"])}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        cloudwatch = self.aws.get("cloudwatch", res.region)
        cloudwatch.put_metric_alarm(AlarmName=res.name, Tags=tag_list(spec["tags"]), **spec["alarm"])
        alarm = cloudwatch.describe_alarms(AlarmNames=[res.name])["MetricAlarms"][0]
        return {"id": res.name, "arn": alarm["AlarmArn"], "name": res.name}

    def delete(self, record: Record, ctx: StepContext) -> None:
        absent_is_done(lambda: self.aws.get("cloudwatch", record.region).delete_alarms(AlarmNames=[record.name]))


def _alarm_observed(name: str, alarm: Mapping[str, Any] | None) -> Observed | None:
    if alarm is None:
        return None
    return Observed(
        outputs={"id": name, "arn": alarm["AlarmArn"], "name": name},
        live={"alarm": _comparable(alarm)},
        state=str(alarm.get("StateValue")),
    )


def _comparable(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """The managed fields, with what AWS may report in another order or leave out as defaults."""
    fields = {f: alarm.get(f) for f in ALARM_FIELDS}
    fields["Dimensions"] = _dimensions(fields["Dimensions"])
    fields["Metrics"] = [_query(q) for q in fields["Metrics"] or []]
    for actions in ("AlarmActions", "OKActions"):
        fields[actions] = list(fields[actions] or [])
    return fields


def _dimensions(dimensions: Any) -> list[dict[str, Any]]:
    return sorted(dimensions or [], key=lambda d: d["Name"])


def _query(query: Mapping[str, Any]) -> dict[str, Any]:
    """One metric-math query; ReturnData defaults to true, as the API documents."""
    stat = query.get("MetricStat")
    if stat:
        metric = stat["Metric"]
        stat = {
            "Metric": {**metric, "Dimensions": _dimensions(metric.get("Dimensions"))},
            "Period": stat.get("Period"),
            "Stat": stat.get("Stat"),
        }
    return {
        "Id": query["Id"],
        "MetricStat": stat,
        "Expression": query.get("Expression"),
        "Label": query.get("Label"),
        "ReturnData": query.get("ReturnData", True),
    }


class DashboardStep(AwsStep):
    """Dashboards are global in AWS; the API of the primary region manages it."""

    kind = "dashboard"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        found = absent_is_none(lambda: self.aws.get("cloudwatch", res.region).get_dashboard(DashboardName=res.name))
        if found is None:
            return None
        return Observed(
            outputs=_outputs(found["DashboardArn"], res.name, res.region),
            live={"body": json.loads(found["DashboardBody"])},
            state="present",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"body": spec["body"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        cloudwatch = self.aws.get("cloudwatch", res.region)
        answer = cloudwatch.put_dashboard(DashboardName=res.name, DashboardBody=json.dumps(spec["body"]))
        problems = [m.get("Message") for m in answer.get("DashboardValidationMessages", [])]
        if problems:
            raise ValueError("dashboard rejected: " + "; ".join(map(str, problems)))
        arn = cloudwatch.get_dashboard(DashboardName=res.name)["DashboardArn"]
        return _outputs(arn, res.name, res.region)

    def delete(self, record: Record, ctx: StepContext) -> None:
        absent_is_done(
            lambda: self.aws.get("cloudwatch", record.region).delete_dashboards(DashboardNames=[record.name])
        )


def _outputs(arn: str, name: str, region: str | None) -> dict[str, Any]:
    url = f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/{name}"
    return {"id": name, "arn": arn, "name": name, "url": url}
