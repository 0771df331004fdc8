"""Faults injected where AWS would produce them: inside the emulator, never in the code under test.

Like the fidelity layer, they change moto only through the emulator's Patches."""

from __future__ import annotations

import random
import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse

from taskmgmt_deploy.emulator.patching import Patches

# How each service says "slow down" (botocore's standard retry mode knows every one of these).
THROTTLE_CODES = {  # keyed by moto's service names
    "awslambda": ("TooManyRequestsException", 429),
    "iam": ("Throttling", 400),
    "sts": ("Throttling", 400),
    "cloudwatch": ("Throttling", 400),
    "sqs": ("RequestThrottled", 400),
    "resourcegroupstaggingapi": ("ThrottledException", 400),
}


class Throttled(ServiceException):
    code = "ThrottlingException"
    message = "Rate exceeded"


class ThrottleInjector:
    """Answers a share of all calls with the service's throttling error; moto does not run them.

    Each service draws from its own seeded generator, so which of a service's calls are throttled
    does not depend on how threads interleave calls to different services.
    """

    def __init__(self, rate: float, seed: int = 7):
        self.rate, self.seed = rate, seed
        self.rngs: dict[str, random.Random] = {}
        self.lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.passed: Counter[str] = Counter()
        self.enabled = True

    def _draw(self, service: str) -> bool:
        with self.lock:
            rng = self.rngs.setdefault(service, random.Random(f"{self.seed}:{service}"))
            return self.enabled and rng.random() < self.rate

    def call_action(self, original: Any, response: BaseResponse) -> Any:
        service = response.service_name or "?"
        if not self._draw(service):
            with self.lock:
                self.passed[service] += 1
            return original(response)
        code, status = THROTTLE_CODES.get(service, ("ThrottlingException", 400))
        error = Throttled(code, "Rate exceeded")
        with self.lock:
            self.injected[service] += 1
        error_status, headers, body = response.serialized(ActionResult(error))
        return (status if status != 400 else error_status), headers, body

    @contextmanager
    def installed(self) -> Iterator[ThrottleInjector]:
        with Patches() as patches:
            patches.around(BaseResponse, "call_action", self.call_action)
            yield self


def botocore_sleeps_on(clock: Any, monkeypatch: Any) -> None:
    """botocore's retry backoff sleeps in botocore.endpoint; make it advance the fake clock."""
    import time

    import botocore.endpoint

    fake_time = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    fake_time.sleep = clock.sleep
    monkeypatch.setattr(botocore.endpoint, "time", fake_time)


@contextmanager
def backend_fault(owner: Any, name: str, fail: Callable[..., BaseException | None]) -> Iterator[None]:
    """owner.name raises what `fail(*args)` returns (when it returns something)."""

    def hook(original: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        error = fail(obj, *args, **kwargs)
        if error is not None:
            raise error
        return original(obj, *args, **kwargs)

    with Patches() as patches:
        patches.around(owner, name, hook)
        yield
