"""CloudWatch as AWS documents it: dashboards are global, alarm parameters are checked, and an
alarm's state changes reach its SNS actions (docs/pessimistic-emulation.md, section C)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends

from taskmgmt_deploy.emulator.alarms import new_state
from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.sns import SnsFidelity

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
    """Dashboards are global (one store for every region); alarm parameters are checked; an
    alarm's state changes (SetAlarmState, or `evaluate` on the metric data) notify its actions."""

    HOME = "us-east-1"

    def __init__(self, sns: SnsFidelity, lock: threading.RLock):
        self.sns, self.lock = sns, lock

    def _home(self, backend: CloudWatchBackend) -> CloudWatchBackend:
        return cloudwatch_backends[backend.account_id][self.HOME]

    def reset(self) -> None:
        """It keeps nothing beside moto's state."""

    def install(self, patches: Patches) -> None:
        for name in ("put_dashboard", "get_dashboard", "delete_dashboards", "list_dashboards"):
            patches.around(CloudWatchBackend, name, self._global(name))
        patches.around(CloudWatchBackend, "put_metric_alarm", self._locked(self.put_metric_alarm))
        patches.around(CloudWatchBackend, "set_alarm_state", self.set_alarm_state)
        # moto walks its alarms dict in Python while other request threads add to it
        # ("dictionary changed size during iteration"); AWS has no such race
        for name in ALARM_READS:
            patches.around(CloudWatchBackend, name, self._locked(_listed))
        patches.around(CloudWatchBackend, "delete_alarms", self._locked(_called))

    def _locked(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        def locked(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                return hook(*args, **kwargs)

        return locked

    def _global(self, name: str) -> Callable[..., Any]:
        def hook(original: Any, backend: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
            return original(self._home(backend), *args, **kwargs)

        return hook

    @staticmethod
    def put_metric_alarm(original: Any, backend: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
        problems = _metric_problems(kwargs) + _action_problems(backend, kwargs)
        if problems:
            raise ValidationError("; ".join(problems))
        previous = backend.alarms.get(kwargs.get("name"))
        alarm = original(backend, *args, **kwargs)
        if previous is None:  # a new alarm has no data yet; an updated one keeps its state
            alarm.update_state("Unchecked: Initial alarm creation", "{}", "INSUFFICIENT_DATA")
        else:
            alarm.state_value, alarm.state_reason = previous.state_value, previous.state_reason
        return alarm

    def set_alarm_state(
        self, original: Any, backend: CloudWatchBackend, alarm_name: str, reason: str, *args: Any, **kwargs: Any
    ) -> Any:
        alarm = backend.alarms.get(alarm_name)
        before = alarm.state_value if alarm is not None else None
        result = original(backend, alarm_name, reason, *args, **kwargs)
        if alarm is not None and alarm.state_value != before:
            self._notify(alarm)
        return result

    def evaluate(self, at: datetime | None = None) -> list[tuple[str, str]]:
        """Evaluate every alarm on the metric data moto holds, as CloudWatch does once a period;
        returns (alarm name, new state) for each alarm whose state changed, whose actions ran."""
        changed = []
        with self.lock:
            for regions in list(cloudwatch_backends.values()):
                for backend in list(regions.values()):
                    data = _all_metrics(backend)
                    for alarm in list(backend.alarms.values()):
                        state = new_state(alarm, data, at)
                        if state != alarm.state_value:
                            alarm.update_state("Threshold crossed", "{}", state)
                            self._notify(alarm)
                            changed.append((alarm.name, state))
        return changed

    def _notify(self, alarm: Any) -> None:
        if not alarm.actions_enabled:
            return
        actions = {
            "ALARM": alarm.alarm_actions,
            "OK": alarm.ok_actions,
            "INSUFFICIENT_DATA": alarm.insufficient_data_actions,
        }[alarm.state_value]
        for action in actions or []:
            self.sns.from_alarm(alarm.alarm_arn, alarm.name, action, alarm.state_value)


ALARM_READS = (
    "describe_alarms",
    "get_alarms_by_action_prefix",
    "get_alarms_by_alarm_name_prefix",
    "get_alarms_by_alarm_names",
    "get_alarms_by_state_value",
)


def _listed(original: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return list(original(*args, **kwargs))


def _called(original: Any, *args: Any, **kwargs: Any) -> Any:
    return original(*args, **kwargs)


def _metric_problems(kwargs: dict[str, Any]) -> list[str]:
    queries = kwargs.get("metric_data_queries") or []
    comparison = kwargs.get("comparison_operator")
    periods = kwargs.get("evaluation_periods")
    datapoints = kwargs.get("datapoints_to_alarm")
    problems = []
    if comparison not in COMPARISONS:
        problems.append(f"ComparisonOperator {comparison!r} is not valid")
    if periods is None or int(periods) < 1:
        problems.append("EvaluationPeriods must be at least 1")
    if datapoints is not None and periods is not None and int(datapoints) > int(periods):
        problems.append("DatapointsToAlarm must not exceed EvaluationPeriods")
    if queries:
        return problems + _queries_problems(kwargs, queries)
    if not kwargs.get("metric_name"):
        problems.append("an alarm needs a metric")
    statistic, extended = kwargs.get("statistic"), kwargs.get("extended_statistic")
    if (statistic is None) == (extended is None):
        problems.append("give exactly one of Statistic and ExtendedStatistic")
    if statistic is not None and statistic not in STATISTICS:
        problems.append(f"Statistic {statistic!r} is not valid")
    if extended is not None and not re.fullmatch(r"p\d{1,2}(\.\d{1,2})?", extended):
        problems.append(f"ExtendedStatistic {extended!r} is not valid")
    return problems + _period_problems(kwargs.get("period"))


def _queries_problems(kwargs: dict[str, Any], queries: list[Any]) -> list[str]:
    """Metric math alarms: one returned query, ids that exist, no SEARCH, and nothing of the
    single-metric form beside them."""
    problems = [
        f"{field} cannot be given with Metrics"
        for field, key in (
            ("MetricName", "metric_name"),
            ("Namespace", "namespace"),
            ("Statistic", "statistic"),
            ("ExtendedStatistic", "extended_statistic"),
            ("Period", "period"),
        )
        if kwargs.get(key)
    ]
    if kwargs.get("dimensions"):
        problems.append("Dimensions cannot be given with Metrics")
    ids = [q.id for q in queries]
    if len(set(ids)) != len(ids) or not all(re.fullmatch(r"[a-z][a-zA-Z0-9_]*", i or "") for i in ids):
        problems.append(f"query ids must be unique and start with a lowercase letter: {ids}")
    returned = [q.id for q in queries if q.return_data is None or str(q.return_data).lower() == "true"]
    if len(returned) != 1:
        problems.append(f"exactly one query must have ReturnData true (found {returned})")
    for query in queries:
        if query.metric_stat is not None:
            problems += _period_problems(query.metric_stat.period)
            continue
        expression = query.expression or ""
        if "SEARCH" in expression.upper():
            problems.append("an alarm cannot use a SEARCH expression")
        unknown = sorted(set(re.findall(r"\b[a-z][a-zA-Z0-9_]*\b", expression)) - set(ids))
        if unknown:
            problems.append(f"expression {expression!r} refers to unknown ids {unknown}")
    return problems


def _period_problems(period: Any) -> list[str]:
    seconds = int(period) if period is not None else 0
    if seconds in (10, 30) or (seconds >= 60 and seconds % 60 == 0):
        return []
    return [f"Period {period!r} must be 10, 30 or a multiple of 60"]


def _action_problems(backend: CloudWatchBackend, kwargs: dict[str, Any]) -> list[str]:
    """Alarm actions here are SNS topics of the alarm's own account and region."""
    wanted = f"arn:aws:sns:{backend.region_name}:{backend.account_id}:"
    problems = []
    for field, key in (
        ("AlarmActions", "alarm_actions"),
        ("OKActions", "ok_actions"),
        ("InsufficientDataActions", "insufficient_data_actions"),
    ):
        for action in kwargs.get(key) or []:
            if not (action.startswith(wanted) and re.fullmatch(r"[\w-]{1,256}", action[len(wanted) :])):
                problems.append(
                    f"{field}: {action} is not an SNS topic of {backend.account_id} in {backend.region_name}"
                )
    return problems


def _all_metrics(backend: CloudWatchBackend, attempts: int = 5) -> list[Any]:
    """moto computes the AWS metrics (SQS, Lambda...) by walking other services' dicts, which
    the server's request threads may be changing at that moment: take the snapshot again then."""
    for attempt in range(attempts):
        try:
            return backend.get_all_metrics()
        except RuntimeError:  # "dictionary changed size during iteration"
            if attempt == attempts - 1:
                raise
    return []
