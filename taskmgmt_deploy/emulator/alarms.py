"""How CloudWatch decides an alarm's state from the metric data it holds, for the emulator.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarm-evaluation:
the last EvaluationPeriods periods are evaluated; the alarm is ALARM when DatapointsToAlarm of
them breach, and TreatMissingData says what periods without data count as. Supported here:
one metric with a statistic (Sum, Average, Minimum, Maximum, SampleCount) or a percentile
(pNN), or metric math whose returned expression is one query's id or MAX/MIN/SUM/AVG over a
list of them (MAX([a, b])), as the stack's alarms use. Anything else is refused rather than
guessed at.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

_ARRAY = re.compile(r"^(MAX|MIN|SUM|AVG)\(\[\s*([a-z][a-zA-Z0-9_]*(?:\s*,\s*[a-z][a-zA-Z0-9_]*)*)\s*\]\)$")
_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
_COMBINE: dict[str, Callable[[list[float]], float]] = {
    "MAX": max,
    "MIN": min,
    "SUM": sum,
    "AVG": lambda values: sum(values) / len(values),
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


class Unsupported(ValueError):
    """An alarm this evaluator does not know how to evaluate."""


def expression_ids(expression: str) -> list[str] | None:
    """The query ids an expression this evaluator understands refers to; None if it does not."""
    if _ID.match(expression):
        return [expression]
    found = _ARRAY.match(expression.strip())
    return [part.strip() for part in found.group(2).split(",")] if found else None


def statistic(values: Sequence[float], stat: str) -> float:
    if stat == "Sum":
        return sum(values)
    if stat == "Average":
        return sum(values) / len(values)
    if stat == "Maximum":
        return max(values)
    if stat == "Minimum":
        return min(values)
    if stat == "SampleCount":
        return float(len(values))
    if re.fullmatch(r"p\d{1,2}(\.\d+)?", stat):
        ordered = sorted(values)
        rank = max(1, math.ceil(float(stat[1:]) / 100 * len(ordered)))
        return ordered[rank - 1]
    raise Unsupported(f"statistic {stat}")


def new_state(alarm: Any, data: Sequence[Any], at: datetime | None = None) -> str:
    """The state of a moto Alarm given moto's metric data, evaluated at `at` (now by default)."""
    at = naive_utc(at or datetime.now(UTC))
    compare = _COMPARE.get(alarm.comparison_operator)
    if compare is None:
        raise Unsupported(f"comparison {alarm.comparison_operator}")
    period = timedelta(seconds=_period(alarm))
    periods = int(alarm.evaluation_periods)
    values = [_value(alarm, data, at - period * (i + 1), at - period * i) for i in range(periods)]
    missing = alarm.treat_missing_data or "missing"
    if all(v is None for v in values):
        if missing == "ignore":
            return str(alarm.state_value)
        return {"breaching": "ALARM", "notBreaching": "OK"}.get(missing, "INSUFFICIENT_DATA")
    threshold = float(alarm.threshold)
    breaching = sum(1 for v in values if (missing == "breaching" if v is None else compare(v, threshold)))
    return "ALARM" if breaching >= int(alarm.datapoints_to_alarm or periods) else "OK"


def _period(alarm: Any) -> int:
    if alarm.metric_data_queries:
        stats = [q.metric_stat for q in alarm.metric_data_queries if q.metric_stat is not None]
        return int(stats[0].period) if stats else int(alarm.period or 60)
    return int(alarm.period)


def _value(alarm: Any, data: Sequence[Any], start: datetime, end: datetime) -> float | None:
    in_period = [d for d in data if hasattr(d, "value") and start <= naive_utc(d.timestamp) < end]
    if not alarm.metric_data_queries:
        stat = alarm.extended_statistic or alarm.statistic
        return _one(in_period, alarm.namespace, alarm.metric_name, _pairs(alarm.dimensions), stat)
    queries = {q.id: q for q in alarm.metric_data_queries}
    returned = [q for q in alarm.metric_data_queries if str(q.return_data).lower() in ("true", "none")]
    if len(returned) != 1:
        raise Unsupported("exactly one query must return data")
    return _query(returned[0], queries, in_period)


def _query(query: Any, queries: dict[str, Any], data: Sequence[Any]) -> float | None:
    if query.metric_stat is not None:
        metric = query.metric_stat.metric
        return _one(data, metric.namespace, metric.metric_name, _pairs(metric.dimensions), query.metric_stat.stat)
    ids = expression_ids(query.expression or "")
    if ids is None:
        raise Unsupported(f"expression {query.expression!r}")
    values = [v for i in ids if (v := _query(queries[i], queries, data)) is not None]
    if not values:
        return None
    found = _ARRAY.match(query.expression.strip())
    return _COMBINE[found.group(1)](values) if found else values[0]


def _one(data: Sequence[Any], namespace: str, name: str, dimensions: set[tuple[str, str]], stat: str) -> float | None:
    values = [
        float(d.value)
        for d in data
        if d.namespace == namespace and d.name == name and _pairs(d.dimensions) == dimensions
    ]
    return statistic(values, stat) if values else None


def naive_utc(when: datetime | str) -> datetime:
    """moto keeps naive UTC times; a request may carry an aware one or ISO text."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def _pairs(dimensions: Any) -> set[tuple[str, str]]:
    return {(d["Name"], d["Value"]) if isinstance(d, dict) else (d.name, d.value) for d in dimensions or []}
