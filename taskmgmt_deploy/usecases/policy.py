"""`taskmgmt policy`: the deploying principal's IAM policy for the configured environment."""

from __future__ import annotations

import re
from typing import Any

from taskmgmt_deploy.errors import UserError
from taskmgmt_deploy.stack.config import Settings
from taskmgmt_deploy.stack.policy import deployer_policy
from taskmgmt_deploy.usecases import factory
from taskmgmt_deploy.usecases.factory import Runtime, aws_clients, caller_account


def policy_for(settings: Settings, account: str | None = None, runtime: Runtime | None = None) -> dict[str, Any]:
    """For `account`, or else for the account the credentials belong to (and its partition)."""
    if account is not None:
        if not re.fullmatch(r"\d{12}", account):
            raise UserError(f"--account-id {account!r} is invalid: must be a 12-digit AWS account id")
        return deployer_policy(settings.stack, account, state=settings.state_url)
    aws = aws_clients(settings, runtime or factory.RUNTIME)
    account = caller_account(aws)
    return deployer_policy(settings.stack, account, aws.identity()["Arn"].split(":")[1], settings.state_url)
