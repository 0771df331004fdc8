"""The emulator's alarm evaluation survives the server's request threads changing moto's dicts."""

from __future__ import annotations

import pytest

from taskmgmt_deploy.emulator.cloudwatch import _all_metrics


class _Backend:
    def __init__(self, failures: int):
        self.failures = failures

    def get_all_metrics(self):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("dictionary changed size during iteration")
        return ["datum"]


def test_a_snapshot_taken_while_another_thread_writes_is_taken_again():
    assert _all_metrics(_Backend(failures=2)) == ["datum"]


def test_a_snapshot_that_never_settles_is_reported():
    with pytest.raises(RuntimeError):
        _all_metrics(_Backend(failures=10))


def test_alarms_are_read_whole_while_other_threads_put_alarms(aws):
    """moto lists alarms by walking its dict in Python: a DescribeAlarms racing a PutMetricAlarm
    failed a deploy with "dictionary changed size during iteration"."""
    import sys
    import threading

    import boto3

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    names = [f"alarm-{i}" for i in range(100)]
    errors: list[Exception] = []

    def put(mine: list[str]) -> None:
        for name in mine:
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/Lambda",
                MetricName="Errors",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )

    def read() -> None:
        try:
            for _ in range(30):
                cloudwatch.describe_alarms(AlarmNames=names[:5])
                cloudwatch.describe_alarms(AlarmNamePrefix="alarm-")
        except Exception as exc:  # noqa: BLE001 - what the race raised, reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(names[i::2],)) for i in range(2)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # threads switch often: the race shows in every run
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(cloudwatch.describe_alarms(AlarmNamePrefix="alarm-")["MetricAlarms"]) == 100
