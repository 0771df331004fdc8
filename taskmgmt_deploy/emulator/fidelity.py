"""Install and remove every fidelity patch, with one clock and one lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from moto.core.model import OperationModel as MotoOperationModel
from moto.core.model import ServiceModel as MotoServiceModel
from moto.core.responses import BaseResponse
from moto.moto_api._internal.models import MotoAPIBackend

from taskmgmt_deploy.core.clock import Clock, SystemClock
from taskmgmt_deploy.emulator.account import AccountFidelity
from taskmgmt_deploy.emulator.apigateway import ApiGatewayFidelity
from taskmgmt_deploy.emulator.awslambda import Invocation, Invoker, LambdaFidelity
from taskmgmt_deploy.emulator.cloudwatch import CloudWatchFidelity
from taskmgmt_deploy.emulator.dsql import Authorization, ClusterStorage, DsqlFidelity
from taskmgmt_deploy.emulator.events import Delivery, EventsFidelity
from taskmgmt_deploy.emulator.gateway.plane import GatewayFidelity
from taskmgmt_deploy.emulator.iam import IamFidelity
from taskmgmt_deploy.emulator.kms import KmsFidelity
from taskmgmt_deploy.emulator.logs import LogsFidelity
from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.s3 import S3Fidelity
from taskmgmt_deploy.emulator.sns import Notification, SnsFidelity
from taskmgmt_deploy.emulator.sqs import SqsFidelity


@dataclass(frozen=True)
class FidelitySettings:
    """How long AWS's eventual states last, in seconds of the fidelity clock."""

    iam_propagation: float = 10.0
    lambda_settle: float = 2.0
    dsql_activation: float = 60.0
    dsql_deletion: float = 30.0
    dsql_update: float = 5.0
    dsql_listing: float = 5.0  # a new cluster is missing from ListClusters for this long
    event_rule_propagation: float = 5.0  # a rule just put or enabled matches no event yet
    asynchronous_events: bool = False  # deliver EventBridge->Lambda in the background, as AWS does
    call_latency: float = 0.0  # added to every call, as the round trip to AWS (the deploy benchmark)
    dsql_multi_region_clusters: int = 5  # the quota per account and region
    lambda_concurrency: int = 1000  # the account's concurrency per region
    s3_conflict_window: float = 1.0  # a failed condition this soon after a change answers 409 (T1)


class Part(Protocol):
    """One service's fidelity: its patches, and the state it keeps beside moto's."""

    def install(self, patches: Patches) -> None: ...

    def reset(self) -> None: ...


class Fidelity:
    def __init__(
        self,
        clock: Clock | None = None,
        settings: FidelitySettings | None = None,
        invoker: Invoker | None = None,
        dsql_storage: ClusterStorage | None = None,
    ):
        self.clock = clock or SystemClock()
        self.settings = settings or FidelitySettings()
        lock = threading.RLock()
        s = self.settings
        self.dsql = DsqlFidelity(
            self.clock,
            s.dsql_activation,
            s.dsql_deletion,
            s.dsql_update,
            s.dsql_listing,
            lock,
            s.dsql_multi_region_clusters,
            dsql_storage,
        )
        self.iam = IamFidelity(self.clock, s.iam_propagation, lock)
        self.awslambda = LambdaFidelity(self.clock, self.iam, s.lambda_settle, lock, invoker, s.lambda_concurrency)
        self.events = EventsFidelity(self.clock, s.event_rule_propagation, lock, invoker, s.asynchronous_events)
        self.sqs = SqsFidelity(self.clock, lock)
        self.sns = SnsFidelity(lock)
        self.cloudwatch = CloudWatchFidelity(self.sns, lock)
        self.account = AccountFidelity(s.dsql_multi_region_clusters)
        self.s3 = S3Fidelity(self.clock, s.s3_conflict_window, lock)
        self.gateway = GatewayFidelity(self.clock, lock)  # API Gateway's data plane (W rows)
        self._parts: list[Part] = [self.dsql, self.iam, self.awslambda, self.events, self.sqs, self.sns]
        self._parts += [self.cloudwatch, self.account, KmsFidelity(), LogsFidelity(), self.s3, self.gateway]
        self._parts.append(ApiGatewayFidelity())  # API Gateway's control plane (H rows)
        self._patches = Patches()

    @property
    def deliveries(self) -> list[Delivery]:
        return self.events.deliveries

    @property
    def notifications(self) -> list[Notification]:
        """Alarm state changes sent to SNS topics: delivered (to whom) or dropped (why)."""
        return self.sns.notifications

    @property
    def authorizations(self) -> list[Authorization]:
        """Permissions AWS checked with the caller's credentials inside its calls."""
        return self.dsql.authorizations

    def reset(self) -> None:
        """Forget what every part keeps; moto's own reset (POST /moto-api/reset) calls this too."""
        for part in self._parts:
            part.reset()

    def install(self) -> Fidelity:
        self._patches.around(MotoServiceModel, "operation_model", _moto_operation_model)
        for part in self._parts:
            part.install(self._patches)
        self._patches.around(MotoAPIBackend, "reset", self._reset_with_moto)
        if self.settings.call_latency:
            self._patches.around(BaseResponse, "call_action", self._delayed)
        return self

    def _reset_with_moto(self, original: Any, backend: MotoAPIBackend) -> None:
        original(backend)
        self.reset()

    def _delayed(self, original: Any, response: BaseResponse) -> Any:
        self.clock.sleep(self.settings.call_latency)
        return original(response)

    def uninstall(self) -> None:
        self.events.close()
        self.gateway.close()
        self._patches.undo()

    def __enter__(self) -> Fidelity:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def _moto_operation_model(original: Any, service: MotoServiceModel, name: str) -> MotoOperationModel:
    """moto's ServiceModel caches its operation models under the key botocore's method, which it
    calls, caches them under: a thread asking between the two gets botocore's model, which
    lacks the http_trait moto routes by (AttributeError, seen when two requests are a
    service's first). Such an answer is made moto's, and cached again."""
    model = original(service, name)
    if not isinstance(model, MotoOperationModel):
        model = MotoOperationModel(model._operation_model, service, name)
        service._instance_cache[("operation_model", (name,))] = model
    return model


__all__ = ["Authorization", "Delivery", "Fidelity", "FidelitySettings", "Invocation", "Invoker", "Notification"]
