"""What the deployer and the function agree on (pinned by tests/unit/test_contract.py)."""

ENV_DSQL_ENDPOINT = "DSQL_ENDPOINT"
ENV_EVENT_BUS = "EVENT_BUS_NAME"
ENV_STACK = "TASKMGMT_STACK"
ENV_DATABASE_URL = "TASKMGMT_DATABASE_URL"  # local PostgreSQL instead of DSQL (sandbox, tests)

DB_APP_ROLE = "taskmgmt_app"

EVENT_SOURCE = "task.management"
DETAIL_TYPES = {"Task Created": "task.created", "Task Updated": "task.updated", "Task Completed": "task.completed"}

NOTIFICATION_SOURCE = "task.management.notifications"
NOTIFICATION_DETAIL_TYPE = "Task Notification"
METRICS_NAMESPACE = "TaskManagement"
