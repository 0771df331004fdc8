"""SQS queues (the rule's dead-letter queue, the function's on-failure queue) and the
queue policy that lets only our rule send to the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.errors import error_code
from taskmgmt_deploy.aws.retry import call_with_retry, is_queue_deleted_recently
from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.steps.aws_step import AwsStep, absent_is_done, absent_is_none


class SqsQueueStep(AwsStep):
    kind = "sqs_queue"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        sqs = self.aws.get("sqs", res.region)
        found = queue_attributes(sqs, res.name, record, ["All"])
        if found is None:
            return None
        url, attributes = found
        wanted = res.spec.get("attributes", {})
        return Observed(
            outputs=_outputs(url, attributes, res.name),
            live={"attributes": {k: attributes.get(k) for k in wanted}},
            state=f"{attributes.get('ApproximateNumberOfMessages', '0')} messages",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"attributes": dict(spec["attributes"])}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        sqs = self.aws.get("sqs", res.region)
        attributes = dict(spec["attributes"])
        if observed is None:
            try:
                url = call_with_retry(
                    lambda: sqs.create_queue(QueueName=res.name, Attributes=attributes, tags=dict(spec["tags"]))[
                        "QueueUrl"
                    ],
                    is_queue_deleted_recently,
                    "queue_deleted_recently",
                    ctx.clock,
                    ctx.progress,
                )
            except ClientError as exc:
                if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
                url = sqs.get_queue_url(QueueName=res.name)["QueueUrl"]
                sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        else:
            url = observed.outputs["url"]
            sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return _outputs(url, {"QueueArn": arn}, res.name)

    def delete(self, record: Record, ctx: StepContext) -> None:
        sqs = self.aws.get("sqs", record.region)
        url = record.outputs.get("url") or absent_is_none(lambda: sqs.get_queue_url(QueueName=record.name)["QueueUrl"])
        if url:
            absent_is_done(lambda: sqs.delete_queue(QueueUrl=url))


class SqsQueuePolicyStep(AwsStep):
    kind = "sqs_queue_policy"

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        sqs = self.aws.get("sqs", res.region)
        found = queue_attributes(sqs, res.spec["queue_name"], record, ["Policy"])
        if found is None or not found[1].get("Policy"):
            return None
        url, attributes = found
        return Observed(
            outputs={"id": f"{url}#policy", "url": url},
            live={"policy": json.loads(attributes["Policy"])},
            state="present",
        )

    def desired(self, res: Resource, spec: Mapping[str, Any]) -> dict[str, Any]:
        return {"policy": spec["policy"]}

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        sqs = self.aws.get("sqs", res.region)
        sqs.set_queue_attributes(QueueUrl=spec["queue_url"], Attributes={"Policy": json.dumps(spec["policy"])})
        return {"id": f"{spec['queue_url']}#policy", "url": spec["queue_url"]}

    def delete(self, record: Record, ctx: StepContext) -> None:
        url = record.outputs.get("url")
        if url:
            sqs = self.aws.get("sqs", record.region)
            absent_is_done(lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""}))


def queue_attributes(sqs: Any, name: str, record: Record | None, names: list[str]) -> tuple[str, dict[str, str]] | None:
    """(url, attributes) of the queue, by the recorded URL first, then by name."""
    url = record.outputs.get("url") if record else None
    if url:
        attributes = absent_is_none(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))
        if attributes is not None:
            return url, attributes.get("Attributes", {})
    url = absent_is_none(lambda: sqs.get_queue_url(QueueName=name)["QueueUrl"])
    if url is None:
        return None
    attributes = absent_is_none(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))
    return None if attributes is None else (url, attributes.get("Attributes", {}))


def _outputs(url: str, attributes: Mapping[str, str], name: str) -> dict[str, Any]:
    return {"id": url, "url": url, "arn": attributes.get("QueueArn"), "name": name}
