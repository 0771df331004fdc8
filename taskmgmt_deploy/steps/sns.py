"""The alarm topic of each region and its email subscription.

The topic's policy lets CloudWatch alarms of this account publish and nobody else from
outside it. CloudWatch cannot publish to a topic encrypted with the AWS managed key
alias/aws/sns, so a topic encrypted with it silences every alarm
(https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html): status says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Action, Change, Observed, Record, Resource
from taskmgmt_deploy.core.step import diff_change
from taskmgmt_deploy.steps.aws_step import (
    AwsStep,
    absent_is_done,
    absent_is_none,
    managed_tags,
    present,
    tag_dict,
    tag_list,
)

AWS_MANAGED_SNS_KEY = "alias/aws/sns"
PENDING = "PendingConfirmation"  # what ListSubscriptionsByTopic shows for an unconfirmed subscription's ARN


def alarm_topic_policy(topic_arn: str) -> dict[str, Any]:
    """Only CloudWatch alarms of the topic's own account and region may publish to it."""
    partition, region, account = topic_arn.split(":")[1], topic_arn.split(":")[3], topic_arn.split(":")[4]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AlarmsOfThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {
                    "ArnLike": {"aws:SourceArn": f"arn:{partition}:cloudwatch:{region}:{account}:alarm:*"},
                    "StringEquals": {"aws:SourceAccount": account},
                },
            }
        ],
    }


class SnsTopicStep(AwsStep):
    kind = "sns_topic"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        sns = self.aws.get("sns", res.region)
        arn = (record.arn if record else None) or self.aws.arn("sns", str(res.region), res.name)
        attributes = absent_is_none(lambda: sns.get_topic_attributes(TopicArn=arn)["Attributes"])
        if attributes is None:
            return None
        tags = tag_dict(sns.list_tags_for_resource(ResourceArn=arn).get("Tags"))
        live: dict[str, Any] = {
            "policy": json.loads(attributes.get("Policy") or "{}"),
            "tags": managed_tags(tags, res.spec.get("tags", {})),
        }
        if "kms_key_arn" in res.spec:
            live["kms_key_arn"] = attributes.get("KmsMasterKeyId") or None
        return Observed(
            outputs=_topic_outputs(arn, res.name),
            live=live,
            state=_subscribers(sns, arn, attributes.get("KmsMasterKeyId")),
        )

    def plan(self, res: Resource, spec: Mapping[str, Any], observed: Observed | None) -> Change:
        if observed is None:
            return Change(Action.CREATE, ("does not exist",))
        return diff_change(self._desired(spec, observed.outputs["arn"]), observed.live)

    @staticmethod
    def _desired(spec: Mapping[str, Any], arn: str) -> dict[str, Any]:
        return {"policy": alarm_topic_policy(arn), "tags": spec["tags"], **present(spec, "kms_key_arn")}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        sns = self.aws.get("sns", res.region)
        if observed is None:
            arn = sns.create_topic(Name=res.name, Tags=tag_list(spec["tags"]))["TopicArn"]
            live: Mapping[str, Any] = {}
        else:
            arn, live = observed.outputs["arn"], observed.live
        wanted = self._desired(spec, arn)
        if live.get("policy") != wanted["policy"]:
            sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(wanted["policy"]))
        if "kms_key_arn" in wanted and live.get("kms_key_arn") != wanted["kms_key_arn"]:
            sns.set_topic_attributes(TopicArn=arn, AttributeName="KmsMasterKeyId", AttributeValue=wanted["kms_key_arn"])
        if observed is not None and live.get("tags") != wanted["tags"]:
            sns.tag_resource(ResourceArn=arn, Tags=tag_list(spec["tags"]))
        return _topic_outputs(arn, res.name)

    def delete(self, record: Record, ctx: StepContext) -> None:
        """Its subscriptions go with it."""
        arn = record.arn or self.aws.arn("sns", str(record.region), record.name)
        absent_is_done(lambda: self.aws.get("sns", record.region).delete_topic(TopicArn=arn))

    def health(self, observed: Observed) -> str | None:
        if observed.state.startswith("encrypted with"):
            return observed.state
        return None


def _subscribers(sns: Any, topic_arn: str, key: str | None) -> str:
    if key == AWS_MANAGED_SNS_KEY:
        return f"encrypted with the AWS managed key {AWS_MANAGED_SNS_KEY}: CloudWatch alarms cannot publish to it"
    subscriptions = list_subscriptions(sns, topic_arn)
    pending = sum(1 for s in subscriptions if s["SubscriptionArn"] == PENDING)
    if not subscriptions:
        return "no subscribers: alarms notify nobody"
    confirmed = len(subscriptions) - pending
    return f"{confirmed} confirmed, {pending} pending confirmation" if pending else f"{confirmed} confirmed"


def list_subscriptions(sns: Any, topic_arn: str) -> list[dict[str, Any]]:
    found = absent_is_none(
        lambda: [
            s
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
            for s in page.get("Subscriptions", [])
        ]
    )
    return found or []


def _topic_outputs(arn: str, name: str) -> dict[str, Any]:
    return {"id": name, "arn": arn, "name": name}


class SnsSubscriptionStep(AwsStep):
    """The alarm email. A new address is subscribed before the old one is removed; until its
    owner follows the link AWS mails, the subscription is pending and delivers nothing."""

    kind = "sns_subscription"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        recorded = record.outputs if record else {}
        topic = recorded.get("topic_arn") or self.aws.arn("sns", str(res.region), str(res.spec.get("topic_name")))
        subscriptions = [
            s for s in list_subscriptions(self.aws.get("sns", res.region), topic) if s["Protocol"] == "email"
        ]
        # The recorded address first: a changed ALARM_EMAIL shows as that subscription's change.
        for endpoint in (recorded.get("endpoint"), res.spec.get("endpoint")):
            found = next((s for s in subscriptions if endpoint and s["Endpoint"] == endpoint), None)
            if found is not None:
                return _subscription_observed(found, recorded)
        return None

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"endpoint": spec["endpoint"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        sns = self.aws.get("sns", res.region)
        # Subscribe is idempotent for one topic, protocol and address; the ARN is returned even
        # while the subscription is pending, so that it can be removed later.
        arn = sns.subscribe(
            TopicArn=spec["topic_arn"], Protocol=spec["protocol"], Endpoint=spec["endpoint"], ReturnSubscriptionArn=True
        )["SubscriptionArn"]
        if observed is not None and observed.live.get("endpoint") != spec["endpoint"]:
            ctx.progress(f"unsubscribing {observed.live.get('endpoint')}")
            _unsubscribe(sns, observed.outputs.get("arn"))
        ctx.progress(f"AWS mails {spec['endpoint']} a link: alarms reach it once it is followed")
        return {"id": spec["endpoint"], "arn": arn, "endpoint": spec["endpoint"], "topic_arn": spec["topic_arn"]}

    def delete(self, record: Record, ctx: StepContext) -> None:
        _unsubscribe(self.aws.get("sns", record.region), record.arn)


def _unsubscribe(sns: Any, arn: str | None) -> None:
    if arn and arn != PENDING:
        absent_is_done(lambda: sns.unsubscribe(SubscriptionArn=arn))


def _subscription_observed(found: Mapping[str, Any], recorded: Mapping[str, Any]) -> Observed:
    pending = found["SubscriptionArn"] == PENDING
    # A pending subscription is listed without its ARN: keep the one Subscribe returned.
    arn = recorded.get("arn") if pending and recorded.get("endpoint") == found["Endpoint"] else found["SubscriptionArn"]
    return Observed(
        outputs={"id": found["Endpoint"], "arn": arn, "endpoint": found["Endpoint"], "topic_arn": found["TopicArn"]},
        live={"endpoint": found["Endpoint"]},
        state="pending confirmation" if pending else "confirmed",
    )
