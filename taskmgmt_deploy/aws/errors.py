"""Turn botocore errors into plain answers: what code, and is it "not found"."""

from __future__ import annotations

from botocore.exceptions import ClientError

NOT_FOUND_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "ResourceNotFound",  # CloudWatch dashboards
        "NoSuchEntity",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFoundException",
        "NotFound",  # SNS
    }
)
ALREADY_EXISTS_CODES = frozenset(
    {
        "ResourceAlreadyExistsException",
        "EntityAlreadyExists",
        "QueueAlreadyExists",
    }
)


NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws configure`"
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", ""))
    return str(exc)


def is_not_found(exc: BaseException) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


def is_already_exists(exc: BaseException) -> bool:
    return error_code(exc) in ALREADY_EXISTS_CODES
