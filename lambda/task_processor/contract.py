"""What the deployer and the function agree on (pinned by tests/unit/test_contract.py)."""

ENV_DSQL_ENDPOINT = "DSQL_ENDPOINT"
ENV_EVENT_BUS = "EVENT_BUS_NAME"
ENV_STACK = "TASKMGMT_STACK"
ENV_DATABASE_URL = "TASKMGMT_DATABASE_URL"  # local PostgreSQL instead of DSQL (sandbox, tests)
ENV_API_AUTH = "API_AUTH"  # iam or jwt: with jwt, $connect checks the ?token= itself
ENV_JWT_ISSUER = "JWT_ISSUER"
ENV_JWT_AUDIENCE = "JWT_AUDIENCE"  # comma-separated
ENV_JWT_LOGIN_URL = "JWT_LOGIN_URL"  # optional: the issuer's hosted login, for the board

# The HTTP API's $default stage variables: how the function learns the WebSocket API's URL
# without a dependency cycle (function -> APIs -> function)
STAGE_VARIABLE_WEBSOCKET_URL = "websocketUrl"
STAGE_VARIABLE_REGION = "region"

# The WebSocket API routes these message actions (route selection: $request.body.action) besides
# $connect, $disconnect and $default
SOCKET_ACTIONS = ("subscribe", "unsubscribe", "ping")

DB_APP_ROLE = "taskmgmt_app"

EVENT_SOURCE = "task.management"
DETAIL_TYPES = {"Task Created": "task.created", "Task Updated": "task.updated", "Task Completed": "task.completed"}

NOTIFICATION_SOURCE = "task.management.notifications"
NOTIFICATION_DETAIL_TYPE = "Task Notification"
METRICS_NAMESPACE = "TaskManagement"
