"""SNS as AWS documents it, over moto's model (docs/pessimistic-emulation.md, section N).

- An email subscription is pending until its owner follows the link AWS mails: it delivers
  nothing meanwhile, and ListSubscriptionsByTopic shows `PendingConfirmation` in place of its
  ARN (moto confirms it at once). Tests confirm one with `confirm(endpoint)`.
- A CloudWatch alarm's notification reaches a topic only if the topic's policy lets
  cloudwatch.amazonaws.com publish for that alarm, and, for an encrypted topic, only if the key
  is a customer managed key, enabled, whose policy lets cloudwatch.amazonaws.com use it: AWS
  drops the notification otherwise, with no error anywhere
  (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html). moto delivers nothing
  at all. Every notification is recorded in `notifications`, delivered or dropped and why.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from moto.sns.exceptions import TopicNotFound
from moto.sns.models import SNSBackend, Subscription, sns_backends

from taskmgmt_deploy.emulator.kms import usable_by
from taskmgmt_deploy.emulator.patching import Patches
from taskmgmt_deploy.emulator.policy import Principal, Request, allowed

CONFIRMED_BY_LINK = ("email", "email-json")
CLOUDWATCH = "cloudwatch.amazonaws.com"
CLOUDWATCH_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


@dataclass(frozen=True)
class Notification:
    """One alarm state change sent to a topic: who received it, or why nobody did."""

    topic_arn: str
    alarm_name: str
    state: str
    delivered_to: tuple[str, ...] = ()
    dropped: str | None = None


class SnsFidelity:
    def __init__(self, lock: threading.RLock):
        self.lock = lock
        self.reset()

    def reset(self) -> None:
        self.pending: set[str] = set()  # subscription ARNs waiting for confirmation
        self.notifications: list[Notification] = []

    # -- subscriptions --------------------------------------------------------------------
    def subscribe(
        self, original: Any, backend: SNSBackend, topic_arn: str, endpoint: str, protocol: str
    ) -> Subscription:
        known = backend._find_subscription(topic_arn, endpoint, protocol)
        subscription = original(backend, topic_arn, endpoint, protocol)
        if known is None and protocol in CONFIRMED_BY_LINK:
            with self.lock:
                self.pending.add(subscription.arn)
        self._show(subscription)
        return subscription

    def confirm(self, endpoint: str) -> int:
        """The owner of `endpoint` followed the link: its pending subscriptions are confirmed."""
        confirmed = 0
        with self.lock:
            for subscription in self._subscriptions():
                if subscription.endpoint == endpoint and subscription.arn in self.pending:
                    self.pending.discard(subscription.arn)
                    self._show(subscription)
                    confirmed += 1
        return confirmed

    def _show(self, subscription: Subscription) -> None:
        pending = subscription.arn in self.pending
        subscription.attributes["PendingConfirmation"] = "true" if pending else "false"
        subscription.confirmed = not pending

    def list_subscriptions_by_topic(
        self, original: Any, backend: SNSBackend, topic_arn: str, next_token: str | None = None
    ) -> tuple[list[Any], Any]:
        subscriptions, token = original(backend, topic_arn, next_token)
        return [self._listed(s) for s in subscriptions], token

    def _listed(self, subscription: Subscription) -> dict[str, str]:
        return {
            "SubscriptionArn": "PendingConfirmation" if subscription.arn in self.pending else subscription.arn,
            "Owner": subscription.owner,
            "Protocol": subscription.protocol,
            "Endpoint": subscription.endpoint,
            "TopicArn": subscription.topic.arn,
        }

    @staticmethod
    def _subscriptions() -> list[Subscription]:
        backends = [backend for regions in sns_backends.values() for backend in regions.values()]
        return [s for backend in backends for s in backend.subscriptions.values()]

    # -- alarm notifications --------------------------------------------------------------
    def from_alarm(self, alarm_arn: str, alarm_name: str, topic_arn: str, state: str) -> Notification:
        account, region = alarm_arn.split(":")[4], alarm_arn.split(":")[3]
        why = self._why_dropped(account, region, alarm_arn, topic_arn)
        if why is None:
            backend = sns_backends[account][region]
            topic = backend.topics[topic_arn]
            endpoints = tuple(
                s.endpoint for s in backend.subscriptions.values() if s.topic is topic and s.arn not in self.pending
            )
            notification = Notification(topic_arn, alarm_name, state, delivered_to=endpoints)
        else:
            notification = Notification(topic_arn, alarm_name, state, dropped=why)
        with self.lock:
            self.notifications.append(notification)
        return notification

    def _why_dropped(self, account: str, region: str, alarm_arn: str, topic_arn: str) -> str | None:
        try:
            topic = sns_backends[account][region].get_topic(topic_arn)
        except TopicNotFound:
            return "the topic does not exist"
        if topic.kms_master_key_id:
            problem = usable_by(account, region, topic.kms_master_key_id, CLOUDWATCH, CLOUDWATCH_KEY_ACTIONS)
            if problem:
                return problem
        request = Request(
            "sns:Publish",
            topic_arn,
            Principal(service=CLOUDWATCH),
            {"aws:SourceArn": alarm_arn, "aws:SourceAccount": account},
        )
        if not allowed([topic._policy_json], request):
            return "the topic's policy does not let this alarm publish"
        return None

    def install(self, patches: Patches) -> None:
        patches.around(SNSBackend, "subscribe", self.subscribe)
        patches.around(SNSBackend, "list_subscriptions_by_topic", self.list_subscriptions_by_topic)
