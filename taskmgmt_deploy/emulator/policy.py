"""A small IAM policy evaluator: what the emulator's services, its SimulatePrincipalPolicy and the
tests use to decide whether a policy allows a request. Standard library only.

It follows https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
for one account: an explicit Deny wins, then any Allow, else the request is implicitly denied.
It knows Action/NotAction and Resource/NotResource with * and ? wildcards (actions ignore case),
Principal/NotPrincipal for resource policies, and the condition operators String*, Arn*, Bool
and Null, with ForAnyValue:/ForAllValues: and ...IfExists. Where it cannot decide it is
pessimistic: an Allow it does not understand grants nothing, a Deny it does not understand
applies. Policy variables (${...}) are not expanded.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"

_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}
_POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"}


@dataclass(frozen=True)
class Principal:
    """Who calls: an IAM principal (its ARN and account) or an AWS service."""

    arn: str | None = None
    account: str | None = None
    service: str | None = None


@dataclass(frozen=True)
class Request:
    action: str
    resource: str
    principal: Principal | None = None  # needed only to evaluate resource policies
    context: Mapping[str, str | list[str]] = field(default_factory=dict)


def decide(documents: Iterable[Mapping[str, Any] | str], request: Request) -> str:
    allowed = False
    for document in documents:
        for statement in statements(document):
            applies = _applies(statement, request)
            effect = statement.get("Effect")
            if effect == "Deny" and applies is not False:
                return EXPLICIT_DENY
            if effect == "Allow" and applies is True:
                allowed = True
    return ALLOWED if allowed else IMPLICIT_DENY


def allowed(documents: Iterable[Mapping[str, Any] | str], request: Request) -> bool:
    return decide(documents, request) == ALLOWED


def statements(document: Mapping[str, Any] | str) -> list[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document) if document else {}
    found = document.get("Statement", [])
    return list(found) if isinstance(found, list) else [found]


def _applies(statement: Mapping[str, Any], request: Request) -> bool | None:
    """True, False, or None when the statement uses something this evaluator does not know."""
    if not (_action_matches(statement, request.action) and _resource_matches(statement, request.resource)):
        return False
    if "Principal" in statement and not _names(statement["Principal"], request.principal):
        return False
    if "NotPrincipal" in statement and _names(statement["NotPrincipal"], request.principal):
        return False
    return _conditions(statement.get("Condition") or {}, request.context)


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return matches(action, statement["Action"], ignore_case=True)
    return "NotAction" in statement and not matches(action, statement["NotAction"], ignore_case=True)


def _resource_matches(statement: Mapping[str, Any], resource: str) -> bool:
    if "Resource" in statement:
        return matches(resource, statement["Resource"])
    return "NotResource" not in statement or not matches(resource, statement["NotResource"])


def matches(value: str, patterns: Any, ignore_case: bool = False) -> bool:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
    if ignore_case:
        value, patterns = value.lower(), [p.lower() for p in patterns]
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def _names(principal: Any, caller: Principal | None) -> bool:
    if caller is None or not (principal == "*" or isinstance(principal, Mapping)):
        return False
    if principal == "*":
        return True
    if caller.service:
        return matches(caller.service, principal.get("Service") or [])
    named = principal.get("AWS") or []
    return any(_names_iam_principal(name, caller) for name in ([named] if isinstance(named, str) else named))


def _names_iam_principal(name: str, caller: Principal) -> bool:
    if name in ("*", caller.arn):
        return True
    # The account (its id or its root): delegated to every principal of that account.
    account = name.split(":")[4] if name.startswith("arn:") and name.endswith(":root") else name
    return account.isdigit() and account == caller.account


def _conditions(conditions: Mapping[str, Any], context: Mapping[str, str | list[str]]) -> bool | None:
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, tests in conditions.items():
        if not isinstance(tests, Mapping):
            return None
        for key, wanted in tests.items():
            held = _condition(operator, lowered.get(key.lower()), [wanted] if isinstance(wanted, str) else wanted)
            if held is not True:
                return held
    return True


def _condition(operator: str, value: str | list[str] | None, wanted: list[Any]) -> bool | None:
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base == "Null":
        return (value is None) == (str(wanted[0]).lower() == "true")
    if base not in _POSITIVE | _NEGATED or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return None
    if value is None:
        return if_exists or base in _NEGATED or qualifier == "ForAllValues"
    values = [value] if isinstance(value, str) else list(value)
    positive = base.replace("Not", "", 1) if base in _NEGATED else base
    hits = [any(_compare(positive, v, str(w)) for w in wanted) for v in values]
    held = all(hits) if qualifier == "ForAllValues" else any(hits)
    return not held if base in _NEGATED else held


def _compare(operator: str, value: str, wanted: str) -> bool:
    if operator in ("StringLike", "ArnLike"):
        return fnmatch.fnmatchcase(value, wanted)
    if operator == "StringEqualsIgnoreCase":
        return value.lower() == wanted.lower()
    if operator == "Bool":
        return value.lower() == wanted.lower()
    return value == wanted  # StringEquals, ArnEquals
