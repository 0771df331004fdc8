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
