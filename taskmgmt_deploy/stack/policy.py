"""The IAM policy the deploying principal needs: deploy, status, destroy, migrate, smoke, logs,
preflight and `taskmgmt policy` itself, for one environment. Pure: StackConfig and account in,
policy document out.

Every resource is named by its ARN where the service supports resource-level permissions.
DSQL clusters have no names (their ids are generated), so changing one is allowed only on
clusters tagged as this environment's (aws:RequestTag on create, aws:ResourceTag after);
reading one is not tag-scoped, because a cluster that is gone has no tags, and waiting for
a delete must see "not found", not "access denied". Actions that cannot be scoped to a
resource are allowed on "*", each listed with its reason in STAR. Tags sent with a create call
are authorized as a tagging action too (CreateQueue with tags needs sqs:TagQueue), so each
create's tagging action is granted beside it. Where AWS checks a permission with the
caller's credentials inside another call (the KMS key DSQL is given), the grant is limited
to that service with kms:ViaService. The policy is checked by parliament (tests/deploy/test_policy.py).
"""

from __future__ import annotations

from typing import Any

from taskmgmt_deploy.stack import blueprint
from taskmgmt_deploy.stack.config import S3Url, StackConfig

# Actions allowed on "*", and why (no resource-level permissions, or none this tool can name).
STAR: dict[str, str] = {
    "dsql:ListClusters": "lists the account's clusters: DSQL has no resource to scope it to",
    "tag:GetResources": "destroy's sweep for resources tagged as this environment's",
    "events:ListEventBuses": "destroy's sweep: the buses named like the environment's (a List action, no resource)",
    "events:ListRules": "destroy's sweep: the rules named like the environment's (a List action, no resource)",
    "iam:ListRoles": "destroy's sweep: the roles named like the environment's (a List action, no resource)",
    "logs:DescribeLogGroups": "finds the log groups by name prefix",
    "cloudwatch:DescribeAlarms": "reads the alarms by name, a region's in one call",
    "sns:Unsubscribe": "removes a replaced alarm email subscription: subscriptions are not IAM resources",
    "lambda:GetAccountSettings": "preflight: the account's unreserved concurrency",
    "account:GetRegionOptStatus": "preflight: whether each region is enabled",
    "servicequotas:ListServiceQuotas": "preflight: the DSQL cluster quota",
}


def deployer_policy(
    stack: StackConfig, account: str, partition: str = "aws", state: S3Url | None = None
) -> dict[str, Any]:
    names = _Names(stack, account, partition)
    statements = [
        _statement("UnscopedReads", sorted(STAR), ["*"]),
        _statement(
            "ManageTheFunctionRole",
            [
                "iam:GetRole",
                "iam:CreateRole",
                "iam:TagRole",
                "iam:UpdateAssumeRolePolicy",
                "iam:DeleteRole",
                "iam:ListRolePolicies",
                "iam:GetRolePolicy",
                "iam:PutRolePolicy",
                "iam:DeleteRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:DetachRolePolicy",
                "iam:ListInstanceProfilesForRole",
            ],
            [names.role],
        ),
        # Destroy's sweep removes what a lost manifest no longer names: anything tagged as this
        # environment's and named with its prefix (the tags are checked by the tool before it deletes).
        _statement(
            "SweepRemovesTheEnvironmentsStrayRoles",
            [
                "iam:ListRoleTags",
                "iam:ListRolePolicies",
                "iam:DeleteRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:DetachRolePolicy",
                "iam:ListInstanceProfilesForRole",
                "iam:DeleteRole",
            ],
            [names.role_pattern],
        ),
        _statement(
            "PassTheFunctionRoleToLambdaOnly",
            ["iam:PassRole"],
            [names.role],
            {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}},
        ),
        _statement(
            "PreflightSimulatesTheCaller",
            ["iam:SimulatePrincipalPolicy"],
            [f"arn:{partition}:iam::{account}:role/*", f"arn:{partition}:iam::{account}:user/*"],
        ),
        _statement(
            "ManageTheFunctions",
            [
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:CreateFunction",
                "lambda:UpdateFunctionCode",
                "lambda:UpdateFunctionConfiguration",
                "lambda:DeleteFunction",
                "lambda:TagResource",
                "lambda:ListTags",
                "lambda:GetFunctionEventInvokeConfig",
                "lambda:PutFunctionEventInvokeConfig",
                "lambda:DeleteFunctionEventInvokeConfig",
                "lambda:AddPermission",
                "lambda:RemovePermission",
                "lambda:GetPolicy",
                "lambda:GetFunctionConcurrency",
                "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency",
                "lambda:InvokeFunction",
            ],
            names.each("lambda", "function:{fn}"),
        ),
        _statement(
            "ManageTheEventBuses",
            [
                "events:DescribeEventBus",
                "events:CreateEventBus",
                "events:DeleteEventBus",
                "events:TagResource",
                "events:PutEvents",
            ],
            names.each("events", "event-bus/{bus}"),
        ),
        _statement(
            "ManageTheRules",
            [
                "events:PutRule",
                "events:DescribeRule",
                "events:DeleteRule",
                "events:TagResource",
                "events:PutTargets",
                "events:ListTargetsByRule",
                "events:RemoveTargets",
            ],
            names.each("events", "rule/{bus}/{rule}") + names.each("events", "rule/{bus}/{broadcast}"),
        ),
        _statement(
            "SweepRemovesTheEnvironmentsStrayRules",
            ["events:ListTagsForResource", "events:ListTargetsByRule", "events:RemoveTargets", "events:DeleteRule"],
            names.each("events", "rule/{prefix}*") + names.each("events", "rule/{prefix}*/{prefix}*"),
        ),
        _statement(
            "ManageTheQueues",
            [
                "sqs:GetQueueUrl",
                "sqs:CreateQueue",
                "sqs:TagQueue",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:DeleteQueue",
            ],
            names.each("sqs", "{dlq}") + names.each("sqs", "{failures}") + names.each("sqs", "{broadcast_dlq}"),
        ),
        _statement(
            "ManageTheLogGroups",
            [
                "logs:CreateLogGroup",
                "logs:DeleteLogGroup",
                "logs:PutRetentionPolicy",
                "logs:TagResource",
                "logs:TagLogGroup",
                "logs:AssociateKmsKey",
            ],
            names.each("logs", "log-group:/aws/lambda/{fn}") + names.each("logs", "log-group:/aws/lambda/{fn}:*"),
        ),
        _statement(
            "ReadTheFunctionsLogs",
            ["logs:FilterLogEvents"],
            names.each("logs", "log-group:/aws/lambda/{fn}") + names.each("logs", "log-group:/aws/lambda/{fn}:*"),
        ),
        _statement(
            "ManageTheAlarms",
            ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource"],
            names.alarm_arns(),
        ),
        _statement(
            "ManageTheDashboard",
            ["cloudwatch:GetDashboard", "cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards"],
            [f"arn:{partition}:cloudwatch::{account}:dashboard/{stack.name('dashboard')}"],
        ),
        _statement(
            "ManageTheAlarmTopics",
            [
                "sns:CreateTopic",
                "sns:GetTopicAttributes",
                "sns:SetTopicAttributes",
                "sns:DeleteTopic",
                "sns:TagResource",
                "sns:ListTagsForResource",
                "sns:Subscribe",
                "sns:ListSubscriptionsByTopic",
            ],
            names.each("sns", stack.name("alarms")),
        ),
        *_api_statements(stack, names),
        _statement(
            "ReadClusters", ["dsql:GetCluster", "dsql:GetClusterPolicy", "dsql:ListTagsForResource"], names.clusters()
        ),
        _statement(
            "CreateThisEnvironmentsClusters",
            ["dsql:CreateCluster", "dsql:TagResource"],
            names.clusters(),
            {"StringEquals": {f"aws:RequestTag/{k}": v for k, v in _scope_tags(stack).items()}},
        ),
        _statement(
            "ManageThisEnvironmentsClusters",
            [
                "dsql:UpdateCluster",
                "dsql:DeleteCluster",
                "dsql:PutClusterPolicy",
                "dsql:DeleteClusterPolicy",
                "dsql:DbConnectAdmin",
            ],
            names.clusters(),
            {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in _scope_tags(stack).items()}},
        ),
        # A multi-Region create or peering update is authorized on the new cluster (which has no
        # tags yet) and on its peer; the witness is authorized in its own region too.
        _statement("PeerTheClusters", ["dsql:PutMultiRegionProperties", "dsql:AddPeerCluster"], names.clusters()),
        _statement(
            "UseTheWitnessRegion",
            ["dsql:PutWitnessRegion"],
            names.clusters(stack.witness_region),
            {"StringEquals": {"dsql:WitnessRegion": stack.witness_region}},
        ),
    ]
    if stack.kms_key:
        statements += _key_statements(stack, names)
    if state is not None:
        statements += state_statements(stack, state, account, partition)
    return {"Version": "2012-10-17", "Statement": statements}


def state_statements(stack: StackConfig, state: S3Url, account: str, partition: str = "aws") -> list[dict[str, Any]]:
    """With the state in S3 (TASKMGMT_STATE=s3://...): the environment's manifest and lock objects,
    their history, and the bucket's KMS key through S3 when the state is encrypted with it."""
    bucket = f"arn:{partition}:s3:::{state.bucket}"
    objects = [f"{bucket}/{state.key(f'{stack.env}.{suffix}')}" for suffix in ("json", "lock")]
    statements = [
        _statement(
            "ReadAndWriteTheSharedState",
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"],
            objects,
        ),
        # Without s3:ListBucket, reading a state that does not exist yet is "access denied", not "not found".
        _statement("SeeWhetherTheSharedStateExists", ["s3:ListBucket"], [bucket]),
        _statement(
            "ListTheSharedStatesVersions",
            ["s3:ListBucketVersions"],
            [bucket],
            {"StringEquals": {"s3:prefix": [state.key(f"{stack.env}.json")]}},
        ),
    ]
    if stack.kms_key:
        keys = _Names(stack, account, partition).each("kms", "key/*")
        via = {"StringEquals": {"kms:ViaService": [f"s3.{r}.amazonaws.com" for r in stack.regions]}}
        statements.append(_statement("LetS3UseTheKeyOfTheState", ["kms:Decrypt", "kms:GenerateDataKey"], keys, via))
    return statements


def _key_statements(stack: StackConfig, names: _Names) -> list[dict[str, Any]]:
    """The customer key: read it (resolve the alias, check its policy in preflight), and let DSQL
    use it with the caller's credentials. An alias names its key only at run time, so an
    alias-configured key is any key of the two regions (kms:ResourceAliases would narrow that,
    but parliament, the policy linter, does not know it for these actions); using one is
    possible only through DSQL, on clusters only this environment's tags let the caller create."""
    key = str(stack.kms_key)
    keys = names.each("kms", "key/*" if key.startswith("alias/") else f"key/{key}")
    via = {"StringEquals": {"kms:ViaService": [f"dsql.{r}.amazonaws.com" for r in stack.regions]}}
    return [
        _statement("ReadTheCustomerKey", ["kms:DescribeKey", "kms:GetKeyPolicy"], keys),
        _statement(
            "LetDsqlUseTheCustomerKey",
            ["kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"],
            keys,
            via,
        ),
    ]


def _api_statements(stack: StackConfig, names: _Names) -> list[dict[str, Any]]:
    """API Gateway authorizes an HTTP verb on a path (https://docs.aws.amazon.com/service-authorization/
    latest/reference/list_amazonapigatewaymanagementv2.html). An API's id is generated: reading is
    allowed on every API of the two regions (a deleted one must read as not found), creating one
    only with this environment's tags, and changing or deleting an API only where it carries them.
    An API's parts (routes, integrations, authorizers, stages, CORS) carry no tags of their own,
    and only the V1 (REST) API documents that children inherit their API's tags for access
    control (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-tagging-supported-resources.html):
    the pessimistic reading is that a V2 part is authorized without tags, so changing parts is
    allowed on `/apis/*/*`, the narrowest a generated id allows. Their Region is `*` (an
    apigateway ARN names no account anyway) so that the policy fits an inline role policy's
    10,240 characters with every option on."""
    scope = _scope_tags(stack)
    return [
        _statement("ReadTheApis", ["apigateway:GET"], [names.gateway("*", "/apis*")]),
        # CreateApi (POST /apis) and TagResource (POST /tags/ARN): what carries this environment's tags.
        _statement(
            "CreateTaggedApis",
            ["apigateway:POST"],
            [names.gateway("*", "/*")],
            {"StringEquals": {f"aws:RequestTag/{k}": v for k, v in scope.items()}},
        ),
        # The smoke test reads its task through each HTTP API, signed (AWS_IAM routes).
        _statement(
            "SmokeCallsTheHttpApis",
            ["execute-api:Invoke"],
            [names.arn("execute-api", region, "*/$default/GET/tasks/*") for region in stack.regions],
        ),
        _statement(
            "ManageTaggedApis",
            ["apigateway:PATCH", "apigateway:DELETE"],
            [names.gateway("*", "/apis/*")],
            {"StringEquals": {f"aws:ResourceTag/{k}": v for k, v in scope.items()}},
        ),
        _statement(
            "ChangeApiParts",
            ["apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"],
            [names.gateway("*", "/apis/*/*")],
        ),
    ]


def _scope_tags(stack: StackConfig) -> dict[str, str]:
    tags = stack.tags()
    return {k: tags[k] for k in ("taskmgmt:env", "taskmgmt:prefix")}


def _statement(sid: str, actions: list[str], resources: list[str], condition: Any = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


class _Names:
    """The environment's ARNs, from the same names the blueprint gives its resources."""

    def __init__(self, stack: StackConfig, account: str, partition: str):
        self.stack, self.account, self.partition = stack, account, partition
        self.values = {
            "fn": blueprint.function_name(stack),
            "bus": stack.name("task-events"),
            "rule": stack.name("task-processing"),
            "dlq": stack.name("task-events-dlq"),
            "failures": stack.name("task-processor-failures"),
            "broadcast": stack.name("broadcast"),
            "broadcast_dlq": stack.name("broadcast-dlq"),
            "prefix": stack.name(""),  # what destroy's sweep looks for in names
        }
        self.role = f"arn:{partition}:iam::{account}:role/{blueprint.role_name(stack)}"
        self.role_pattern = f"arn:{partition}:iam::{account}:role/{stack.name('')}*"

    def arn(self, service: str, region: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{region}:{self.account}:{resource}"

    def gateway(self, region: str, path: str) -> str:
        """API Gateway's ARNs name no account."""
        return f"arn:{self.partition}:apigateway:{region}::{path}"

    def each(self, service: str, pattern: str) -> list[str]:
        """The resource in each region of the stack."""
        return [self.arn(service, region, pattern.format(**self.values)) for region in self.stack.regions]

    def clusters(self, *extra_regions: str) -> list[str]:
        return [self.arn("dsql", region, "cluster/*") for region in (*self.stack.regions, *extra_regions)]

    def alarms(self) -> list[tuple[str, str]]:
        return [(r, a.name) for r in self.stack.regions for a in blueprint.alarm_definitions(self.stack, r, "-")]

    def alarm_arns(self) -> list[str]:
        """Each alarm by name, but the function's (and its failures queue's) as one `{fn}-*` (the
        policy must fit 10,240 characters). No other environment's alarm matches that: its name
        would start with '{env}-task-processor-', 16 characters more than an environment's name may have."""
        family = f"{blueprint.function_name(self.stack)}-"
        arns = [
            self.arn("cloudwatch", region, f"alarm:{name}")
            for region, name in self.alarms()
            if not name.startswith(family)
        ]
        return [self.arn("cloudwatch", region, f"alarm:{family}*") for region in self.stack.regions] + arns
