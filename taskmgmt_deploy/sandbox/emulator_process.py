"""The sandbox's AWS: `python -m taskmgmt_deploy.sandbox.emulator_process --port P ...`.

moto's server with the fidelity layer on the real clock, with short but real delays (IAM
propagation, Lambda Pending, DSQL activation), so a sandbox deploy takes the same paths
as one on AWS; Lambda invocations and EventBridge deliveries run the function's code. Each
DSQL cluster pair is a database of the sandbox's PostgreSQL (sandbox/databases.py), which a
function reaches through the cluster endpoint its configuration names.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from taskmgmt_deploy.core.clock import SystemClock

SANDBOX_FIDELITY = {
    "iam_propagation": 0.6,
    "lambda_settle": 0.3,
    "dsql_activation": 2.0,
    "dsql_deletion": 1.0,
    "dsql_update": 0.5,
    "dsql_listing": 0.5,
    "event_rule_propagation": 1.0,
    "asynchronous_events": True,
}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sandbox", "AWS_SECRET_ACCESS_KEY": "sandbox"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--postgres-url", required=True, help="the PostgreSQL server standing in for DSQL (admin)")
    args = parser.parse_args(argv)

    from taskmgmt_deploy.emulator.fidelity import FidelitySettings
    from taskmgmt_deploy.emulator.logs import FunctionLogs
    from taskmgmt_deploy.emulator.server import start_server
    from taskmgmt_deploy.sandbox.databases import ClusterDatabases
    from taskmgmt_deploy.sandbox.runner import FunctionRunner

    url = f"http://{args.host}:{args.port}"
    databases = ClusterDatabases(args.postgres_url)
    runner = FunctionRunner(args.workdir, {**CREDENTIALS, "AWS_ENDPOINT_URL": url}, databases.url)
    server = start_server(
        FidelitySettings(**SANDBOX_FIDELITY),
        port=args.port,
        host=args.host,
        clock=SystemClock(),
        invoker=runner,
        dsql_storage=databases,
    )
    runner.log_sink = FunctionLogs(server.fidelity.awslambda.log_group_of)
    print(f"sandbox emulator listening on {server.url}", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    runner.close()


if __name__ == "__main__":
    main()
