"""EventBridge delivery to Lambda, and the deletion of a bus, as AWS documents them
(docs/pessimistic-emulation.md, section E)."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.events.exceptions import ValidationException
from moto.events.models import EventsBackend, Rule
from moto.sqs.models import sqs_backends

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.awslambda import Invoker, invocation_for
from taskmgmt_deploy.emulator.iam import allows
from taskmgmt_deploy.emulator.patching import Patches

EVENTS = "events.amazonaws.com"


@dataclass
class Delivery:
    """One event EventBridge handed (or failed to hand) to a Lambda target."""

    rule_arn: str
    function_arn: str
    event: dict[str, Any]
    outcome: str  # "invoked", "function-error", "no-permission", "no-function"


class EventsFidelity:
    """Disabled rules deliver nothing, and a rule just put or enabled matches nothing for a
    while; Lambda targets are invoked asynchronously, as AWS does: the function's resource
    policy must allow this rule, failures end in the DLQs (if their policy lets the rule send)."""

    def __init__(
        self, clock: Clock, rule_propagation: float, lock: threading.RLock, invoker: Invoker | None, asynchronous: bool
    ):
        self.clock = clock
        self.rule_propagation = rule_propagation
        self.lock = lock
        self.invoker = invoker
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="eventbridge") if asynchronous else None
        self.reset()

    def reset(self) -> None:
        """Forget every delivery and when each rule changed (moto's reset forgets the rules)."""
        self.deliveries: list[Delivery] = []
        self.rule_changed: dict[str, float] = {}  # rule ARN -> when it was last put or enabled

    def put_rule(self, original: Any, backend: EventsBackend, *args: Any, **kwargs: Any) -> Rule:
        rule = original(backend, *args, **kwargs)
        self._changed(rule)
        return rule

    @staticmethod
    def delete_bus(original: Any, backend: EventsBackend, name: str) -> None:
        """AWS wants a bus's rules deleted before the bus (moto deletes them with it)."""
        bus = backend.event_buses.get(name)
        if bus is not None and bus.rules:
            raise ValidationException(f"Cannot delete event bus {name} because it still has rules.")
        original(backend, name)

    def enable(self, original: Any, rule: Rule) -> None:
        original(rule)
        self._changed(rule)

    def _changed(self, rule: Rule) -> None:
        with self.lock:
            self.rule_changed[rule.arn] = self.clock.now()

    def _propagating(self, rule: Rule) -> bool:
        with self.lock:
            changed = self.rule_changed.get(rule.arn)
        return changed is not None and self.clock.now() - changed < self.rule_propagation

    def send_to_targets(self, original: Any, rule: Rule, event: dict[str, Any], transform_input: bool = True) -> None:
        if rule.state == "DISABLED" or self._propagating(rule) or not rule.event_pattern.matches_event(event):
            return
        functions = [t for t in rule.targets if t["Arn"].split(":")[2] == "lambda"]
        others = [t for t in rule.targets if t not in functions]
        if others:
            with self.lock:  # moto reads rule.targets; show it only the targets it can deliver to
                saved, rule.targets = rule.targets, others
                try:
                    original(rule, event, transform_input)
                finally:
                    rule.targets = saved
        for target in functions:
            if self._pool is not None:
                self._pool.submit(self._deliver, rule, target, dict(event))
            else:
                self._deliver(rule, target, dict(event))

    def _deliver(self, rule: Rule, target: dict[str, Any], event: dict[str, Any]) -> None:
        event.setdefault("account", rule.account_id)
        fn = _function(target["Arn"])
        if fn is None or not _permits(fn, rule.arn):
            outcome = "no-function" if fn is None else "no-permission"
            dead_letters = (target.get("DeadLetterConfig") or {}).get("Arn")
            if dead_letters and _queue_permits(dead_letters, rule.arn):  # else the event is lost
                self._to_queue(
                    dead_letters,
                    json.dumps(event),
                    {
                        "RULE_ARN": rule.arn,
                        "TARGET_ARN": target["Arn"],
                        "ERROR_CODE": "NO_PERMISSIONS" if fn else "RESOURCE_NOT_FOUND",
                    },
                )
            self._record(Delivery(rule.arn, target["Arn"], event, outcome))
            return
        if self.invoker is None:
            self._record(Delivery(rule.arn, fn.function_arn, event, "invoked"))
            return
        payload = json.dumps(event).encode()
        attempts = 1 + _max_retries(fn)
        for _ in range(attempts):
            response, error = self.invoker(invocation_for(fn, payload, asynchronous=True))
            if not error:
                self._record(Delivery(rule.arn, fn.function_arn, event, "invoked"))
                return
        self._record(Delivery(rule.arn, fn.function_arn, event, "function-error"))
        self._to_queue(_on_failure(fn), json.dumps(_failure_record(fn, event, response, attempts)), {})

    def _record(self, delivery: Delivery) -> None:
        with self.lock:
            self.deliveries.append(delivery)

    @staticmethod
    def _to_queue(queue_arn: str | None, body: str, attributes: dict[str, str]) -> None:
        if not queue_arn:
            return
        _, _, _, region, account, name = queue_arn.split(":", 5)
        sqs_backends[account][region].send_message(
            name, body, message_attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        )

    def install(self, patches: Patches) -> None:
        patches.around(Rule, "send_to_targets", self.send_to_targets)
        patches.around(Rule, "enable", self.enable)
        patches.around(EventsBackend, "put_rule", self.put_rule)
        patches.around(EventsBackend, "delete_event_bus", self.delete_bus)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _function(arn: str) -> LambdaFunction | None:
    _, _, _, region, account, rest = arn.split(":", 5)
    name = rest.split(":")[1]
    from moto.awslambda_simple.models import lambda_simple_backends

    for backends in (lambda_simple_backends, lambda_backends):
        try:
            return backends[account][region].get_function(name)
        except Exception:  # noqa: BLE001, S112 - not in this backend
            continue
    return None


def _permits(fn: LambdaFunction, rule_arn: str) -> bool:
    """The function's resource policy lets this rule invoke it."""
    document = {"Statement": fn.policy.statements}
    return allows(document, "lambda:InvokeFunction", fn.function_arn, EVENTS, rule_arn)


def _queue_permits(queue_arn: str, rule_arn: str) -> bool:
    """The queue's policy lets EventBridge send to it for this rule: a dead-letter queue
    needs one, since EventBridge sends with its own identity."""
    _, _, _, region, account, name = queue_arn.split(":", 5)
    queue = sqs_backends[account][region].queues.get(name)
    return queue is not None and allows(queue.policy or "", "sqs:SendMessage", queue_arn, EVENTS, rule_arn)


def _max_retries(fn: LambdaFunction) -> int:
    configs = getattr(fn, "event_invoke_config", None) or []
    if configs:
        return int(configs[-1].config.get("MaximumRetryAttempts", 2))
    return 2


def _on_failure(fn: LambdaFunction) -> str | None:
    configs = getattr(fn, "event_invoke_config", None) or []
    if not configs:
        return None
    destination = (configs[-1].config.get("DestinationConfig") or {}).get("OnFailure") or {}
    return destination.get("Destination")


def _failure_record(fn: LambdaFunction, event: dict[str, Any], response: bytes, attempts: int) -> dict[str, Any]:
    try:
        payload: Any = json.loads(response or b"null")
    except ValueError:
        payload = response.decode(errors="replace")
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{fn.function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": payload,
    }
