"""What a CI pipeline runs around a deploy: the deploying principal's policy, and the preflight."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from taskmgmt_deploy.cli.common import CI_PANEL, app, console, settings_from, with_settings


@app.command(rich_help_panel=CI_PANEL)
@with_settings
def policy(
    as_json: Annotated[bool, typer.Option("--json", help="Print the policy document itself.")] = False,
    account_id: Annotated[
        str | None,
        typer.Option("--account-id", help="The account to write ARNs for. \\[default: the credentials' account]"),
    ] = None,
    *,
    flags: dict[str, str | None],
) -> None:
    """Print the IAM policy the deploying principal needs for this environment.

    It covers deploy, status, destroy, migrate, smoke, preflight and this command, with every
    resource scoped to this environment's names and ARNs (DSQL clusters by their tags).
    Attach it as an inline policy of the CI role; --json prints the document:
    taskmgmt policy --env prod --json > policy.json
    """
    from taskmgmt_deploy.usecases.policy import policy_for

    document = policy_for(settings_from(flags), account_id)
    if as_json:
        console.json(document)
        return
    console.key_values({s["Sid"]: _summary(s) for s in document["Statement"]})


def _summary(statement: dict[str, Any]) -> dict[str, Any]:
    summary = {"actions": ", ".join(statement["Action"]), "resources": ", ".join(statement["Resource"])}
    if "Condition" in statement:
        summary["only if"] = "; ".join(
            f"{key} {operator} {value}"
            for operator, tests in statement["Condition"].items()
            for key, value in tests.items()
        )
    return summary


@app.command(rich_help_panel=CI_PANEL)
@with_settings
def preflight(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
    *,
    flags: dict[str, str | None],
) -> None:
    """Check, reading only, what would make a deploy fail late; one line per check.

    The credentials; each region (enabled, DSQL reachable); the DSQL cluster quota; arm64
    Lambda and reserved concurrency headroom; the KMS key; and, where the caller may use
    iam:SimulatePrincipalPolicy, whether it may do what `taskmgmt policy` lists.
    Exit 0 only if every check passes. Deploy runs it first on AWS.
    """
    from taskmgmt_deploy.usecases.factory import RUNTIME, aws_clients, caller_account
    from taskmgmt_deploy.usecases.preflight import preflight as run_preflight

    settings = settings_from(flags)
    aws = aws_clients(settings, RUNTIME)
    caller_account(aws)  # no credentials at all is a user error (exit 2), as for every command
    checks = run_preflight(settings.stack, aws)
    passed = all(c.ok for c in checks)
    if as_json:
        console.json(
            {"ok": passed, "checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in checks]}
        )
    else:
        show_checks(checks)
    if not passed:
        raise typer.Exit(1)


def show_checks(checks: list[Any], stream: str = "out") -> None:
    for check in checks:
        console.check(check.outcome, f"{check.name}: {check.detail}", stream)
