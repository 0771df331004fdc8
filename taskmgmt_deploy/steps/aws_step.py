"""Shared plumbing for steps that talk to AWS."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.errors import is_not_found
from taskmgmt_deploy.core.step import Step

T = TypeVar("T")


class AwsStep(Step):
    def __init__(self, aws: AwsClients):
        self.aws = aws

    def read_phase(self) -> AbstractContextManager[None]:
        return self.aws.shared_reads.phase()


def absent_is_none(call: Callable[[], T]) -> T | None:
    """Run a describe call; a not-found answer means None."""
    try:
        return call()
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def absent_is_done(call: Callable[[], Any]) -> None:
    """Run a delete call; a not-found answer means it is already gone."""
    absent_is_none(call)


def tag_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: k, value: v} for k, v in sorted(tags.items())]


def tag_dict(tags: Iterable[Mapping[str, str]] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {t[key]: t[value] for t in tags or ()}


def managed_tags(live_tags: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The live tags restricted to the keys we manage (others' tags are not drift)."""
    return {k: live_tags[k] for k in wanted if k in live_tags}


def present(spec: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    """Those of `fields` the spec has: an optional setting is managed only when it is configured."""
    return {f: spec[f] for f in fields if f in spec}
