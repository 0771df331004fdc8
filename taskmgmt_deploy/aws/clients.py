"""The one place that creates AWS clients: cached per (service, region), thread-safe.

Throttling and transient errors are retried by botocore's standard retry mode on every
client; semantic retries (IAM propagation, Lambda busy) live in aws/retry.py.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from taskmgmt_deploy.aws.shared_reads import SharedReads

GLOBAL_SERVICES = ("iam",)


class AwsClients:
    def __init__(
        self,
        session: boto3.Session,
        *,
        endpoint_url: str | None = None,
        home_region: str = "us-east-1",
        max_attempts: int = 10,
        max_pool: int = 16,
    ):
        self.session = session
        self.endpoint_url = endpoint_url
        self.home_region = home_region
        self._config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=10,
            read_timeout=70,
            max_pool_connections=max_pool,
            user_agent_extra="taskmgmt",
        )
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._identity: dict[str, str] | None = None
        self._identity_lock = threading.Lock()
        self.shared_reads = SharedReads()  # describe answers several resources need, once per read phase

    def get(self, service: str, region: str | None = None) -> Any:
        region = self.home_region if (region is None or service in GLOBAL_SERVICES) else region
        key = (service, region)
        with self._lock:  # boto3 sessions are not thread-safe while creating clients
            client = self._cache.get(key)
            if client is None:
                kwargs: dict[str, Any] = {"region_name": region, "config": self._config}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                client = self.session.client(service, **kwargs)
                self._cache[key] = client
            return client

    def prewarm(self, pairs: list[tuple[str, str | None]]) -> None:
        """Create clients ahead of use: building one is CPU work (botocore loads its models)
        that can run while another thread waits on the network."""
        for service, region in pairs:
            self.get(service, region)

    def identity(self) -> dict[str, str]:
        """GetCallerIdentity's answer (Account, Arn, UserId), asked once."""
        with self._identity_lock:
            if self._identity is None:
                answer = self.get("sts").get_caller_identity()
                self._identity = {k: str(answer[k]) for k in ("Account", "Arn", "UserId")}
            return dict(self._identity)

    def as_role(self, role_arn: str, session_name: str) -> AwsClients:
        """Clients that act as `role_arn`, with credentials from STS AssumeRole (an hour's worth)."""
        creds = self.get("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        return AwsClients(session, endpoint_url=self.endpoint_url, home_region=self.home_region)

    def account_id(self) -> str:
        return self.identity()["Account"]

    def arn(self, service: str, region: str, resource: str) -> str:
        """The ARN of one of this account's resources whose ARN AWS derives from its name."""
        partition = self.identity()["Arn"].split(":")[1]
        return f"arn:{partition}:{service}:{region}:{self.account_id()}:{resource}"
