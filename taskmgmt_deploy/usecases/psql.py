"""psql: the libpq settings (PG* variables) that open a region's database.

On DSQL: the region's cluster endpoint, sslmode=require, and a fresh IAM token (made
locally, valid 15 minutes): as `admin`, or as the function's database role, whose token
must be signed by the function's IAM role (assumed through STS). With a database URL (the
sandbox, or TASKMGMT_DATABASE_URL): that database.
"""

from __future__ import annotations

from botocore.exceptions import ClientError
from psycopg.conninfo import conninfo_to_dict

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.aws.errors import error_message
from taskmgmt_deploy.core.manifest import Manifest
from taskmgmt_deploy.database.migrate import APP_ROLE
from taskmgmt_deploy.errors import UserError
from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.usecases.factory import recorded_config

TOKEN_SECONDS = 900
_URL_KEYS = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER", "password": "PGPASSWORD"}


def url_environment(database_url: str) -> dict[str, str]:
    parts = conninfo_to_dict(database_url)
    env = {var: str(parts[key]) for key, var in _URL_KEYS.items() if parts.get(key)}
    if parts.get("sslmode"):
        env["PGSSLMODE"] = str(parts["sslmode"])
    return env


def dsql_environment(aws: AwsClients, manifest: Manifest, region: str | None, admin: bool) -> dict[str, str]:
    stack = recorded_config(manifest)
    region = region or stack.primary_region
    if region not in stack.regions:
        raise UserError(f"--region {region!r} is invalid: the stack's regions are {', '.join(stack.regions)}")
    cluster = manifest.get(blueprint.cluster_key(stack, region))
    endpoint = cluster.outputs.get("endpoint") if cluster else None
    if not endpoint:
        raise UserError(f"environment '{stack.env}' has no cluster in {region} yet: run `taskmgmt deploy` first")
    if admin:
        token = aws.get("dsql", region).generate_db_connect_admin_auth_token(
            Hostname=endpoint, Region=region, ExpiresIn=TOKEN_SECONDS
        )
    else:
        role = manifest.get(blueprint.ROLE)
        if role is None or not role.arn:
            raise UserError(f"environment '{stack.env}' has no function role yet: run `taskmgmt deploy` first")
        try:
            as_function = aws.as_role(str(role.arn), "taskmgmt-psql")
        except ClientError as exc:
            raise UserError(
                f"cannot act as the function's role {role.arn}: {error_message(exc)}. Its trust policy admits "
                "Lambda; use --admin, or allow your principal to assume it"
            ) from None
        token = as_function.get("dsql", region).generate_db_connect_auth_token(
            Hostname=endpoint, Region=region, ExpiresIn=TOKEN_SECONDS
        )
    return {
        "PGHOST": endpoint,
        "PGPORT": "5432",
        "PGDATABASE": "postgres",
        "PGUSER": "admin" if admin else APP_ROLE,
        "PGPASSWORD": token,
        "PGSSLMODE": "require",
    }
