"""CloudWatch as AWS documents it: dashboards are global, alarm parameters are checked
(docs/pessimistic-emulation.md, section C)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends

from taskmgmt_deploy.emulator.patching import Patches

COMPARISONS = {
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
}
STATISTICS = {"SampleCount", "Average", "Sum", "Minimum", "Maximum"}


class CloudWatchFidelity:
    """Dashboards are global (one store for every region); alarm parameters are checked."""

    HOME = "us-east-1"

    def _home(self, backend: CloudWatchBackend) -> CloudWatchBackend:
        return cloudwatch_backends[backend.account_id][self.HOME]

    def reset(self) -> None:
        """It keeps nothing beside moto's state."""

    def install(self, patches: Patches) -> None:
        for name in ("put_dashboard", "get_dashboard", "delete_dashboards", "list_dashboards"):
            patches.around(CloudWatchBackend, name, self._global(name))
        patches.around(CloudWatchBackend, "put_metric_alarm", self.put_metric_alarm)

    def _global(self, name: str) -> Callable[..., Any]:
        def hook(original: Any, backend: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
            return original(self._home(backend), *args, **kwargs)

        return hook

    @staticmethod
    def put_metric_alarm(original: Any, backend: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
        comparison = kwargs.get("comparison_operator")
        statistic = kwargs.get("statistic")
        periods = kwargs.get("evaluation_periods")
        datapoints = kwargs.get("datapoints_to_alarm")
        problems = []
        if comparison not in COMPARISONS:
            problems.append(f"ComparisonOperator {comparison!r} is not valid")
        if statistic is not None and statistic not in STATISTICS:
            problems.append(f"Statistic {statistic!r} is not valid")
        if not kwargs.get("metric_name") and not kwargs.get("metric_data_queries"):
            problems.append("an alarm needs a metric")
        if periods is None or int(periods) < 1:
            problems.append("EvaluationPeriods must be at least 1")
        if datapoints is not None and periods is not None and int(datapoints) > int(periods):
            problems.append("DatapointsToAlarm must not exceed EvaluationPeriods")
        if problems:
            raise ValidationError("; ".join(problems))
        return original(backend, *args, **kwargs)
