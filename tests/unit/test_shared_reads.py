"""SharedReads: within a read phase one call per key, whatever the threads; outside, every call."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from taskmgmt_deploy.aws.shared_reads import SharedReads


class Counted:
    def __init__(self, answer: object = "policy", error: Exception | None = None):
        self.calls = 0
        self.answer, self.error = answer, error
        self.release = threading.Event()
        self.lock = threading.Lock()

    def __call__(self) -> object:
        with self.lock:
            self.calls += 1
        assert self.release.wait(5)
        if self.error:
            raise self.error
        return self.answer


def test_outside_a_phase_every_read_is_made():
    shared, call = SharedReads(), Counted()
    call.release.set()
    assert [shared.read("k", call) for _ in range(3)] == ["policy"] * 3
    assert call.calls == 3


def test_in_a_phase_callers_of_one_key_in_any_thread_share_one_call():
    shared, call, other = SharedReads(), Counted(), Counted("other")
    other.release.set()
    with shared.phase(), ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(shared.read, "k", call) for _ in range(8)]
        assert shared.read("other key", other) == "other"
        call.release.set()  # the first caller is still in its call: the others wait for its answer
        assert [a.result() for a in answers] == ["policy"] * 8
    assert (call.calls, other.calls) == (1, 1)


def test_an_error_reaches_every_caller_of_the_key():
    shared, call = SharedReads(), Counted(error=RuntimeError("AccessDenied"))
    call.release.set()
    with shared.phase():
        for _ in range(3):
            with pytest.raises(RuntimeError, match="AccessDenied"):
                shared.read("k", call)
    assert call.calls == 1


def test_answers_last_until_the_outermost_phase_ends():
    shared, call = SharedReads(), Counted()
    call.release.set()
    with shared.phase():
        with shared.phase():
            shared.read("k", call)
        shared.read("k", call)  # one phase still open
    assert call.calls == 1
    with shared.phase():
        shared.read("k", call)  # a new phase asks again
    assert call.calls == 2
