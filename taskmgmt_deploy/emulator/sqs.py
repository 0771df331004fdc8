"""SQS as AWS documents it: a queue name is not reusable for a while after its queue was deleted,
a queue's URL names its Region, and SetQueueAttributes changes only the attributes it names (moto
also drops the queue's policy when the call does not name it) (docs/pessimistic-emulation.md,
section S)."""

from __future__ import annotations

import threading
from typing import Any

from moto.sqs.exceptions import SQSException
from moto.sqs.models import Queue, SQSBackend

from taskmgmt_deploy.core.clock import Clock
from taskmgmt_deploy.emulator.patching import Patches

QUEUE_NAME_REUSE_SECONDS = 60.0


class SqsFidelity:
    """A queue name cannot be reused until 60 seconds after its queue was deleted."""

    def __init__(self, clock: Clock, lock: threading.RLock):
        self.clock, self.lock = clock, lock
        self.reset()

    def reset(self) -> None:
        """Forget which names were freed when (moto's reset forgets the queues)."""
        self.deleted: dict[tuple[str, str, str], float] = {}  # (account, region, name) -> when deleted

    def delete_queue(self, original: Any, backend: SQSBackend, queue_name: str) -> Any:
        result = original(backend, queue_name)
        with self.lock:
            self.deleted[(backend.account_id, backend.region_name, queue_name)] = self.clock.now()
        return result

    def create_queue(self, original: Any, backend: SQSBackend, name: str, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            when = self.deleted.get((backend.account_id, backend.region_name, name))
        if when is not None and self.clock.now() - when < QUEUE_NAME_REUSE_SECONDS:
            raise SQSException(
                "AWS.SimpleQueueService.QueueDeletedRecently",
                "You must wait 60 seconds after deleting a queue before you can create another with the same name.",
            )
        return original(backend, name, *args, **kwargs)

    @staticmethod
    def set_attributes(original: Any, queue: Queue, attributes: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html"""
        policy = getattr(queue, "policy", None)  # none yet while the queue is being created
        result = original(queue, attributes, *args, **kwargs)
        if "Policy" not in attributes:
            queue.policy = policy
        return result

    @staticmethod
    def queue_url(original: Any, queue: Queue, request_url: Any) -> str:
        """AWS's form, whatever endpoint was called: moto's server answers with its own host,
        the same for every Region, so two Regions' queues of one name would share a URL."""
        return f"https://sqs.{queue.region}.amazonaws.com/{queue.account_id}/{queue.name}"

    def install(self, patches: Patches) -> None:
        patches.around(Queue, "url", self.queue_url)
        patches.around(SQSBackend, "delete_queue", self.delete_queue)
        patches.around(SQSBackend, "create_queue", self.create_queue)
        patches.around(Queue, "_set_attributes", self.set_attributes)
