"""A warm Lambda execution environment, run as its own process by the sandbox's runner.

Standard library only: it runs with the unpacked function package first on sys.path, as
Lambda does. It loads the handler once, then answers one invocation per line on stdin,
replying on the original stdout; the function's own output (its logs) goes to stderr.
"""

import importlib
import json
import os
import sys
import time
import traceback


class Context:
    def __init__(self, request: dict) -> None:
        self.aws_request_id = request["request_id"]
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = "$LATEST"
        self.invoked_function_arn = request.get("function_arn", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline = time.monotonic() + float(request.get("timeout", 60))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Capture:
    """The function's output during one invocation: passed on to the log file, and kept as
    (epoch milliseconds, line) for the runner, which sends it to CloudWatch Logs as Lambda does."""

    def __init__(self, sink) -> None:
        self.sink, self.lines, self._partial = sink, [], ""

    def write(self, text: str) -> int:
        self.sink.write(text)
        now = int(time.time() * 1000)
        *complete, self._partial = (self._partial + text).split("\n")
        self.lines += [(now, line) for line in complete if line.strip()]
        return len(text)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> list:
        if self._partial.strip():
            self.lines.append((int(time.time() * 1000), self._partial))
        self._partial = ""
        return self.lines


def error(exc: BaseException) -> str:
    return json.dumps(
        {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": traceback.format_exception(exc)}
    )


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the function's prints and logs go to stderr
    module_name, function_name = sys.argv[1].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
        init_error = None
    except Exception as exc:  # noqa: BLE001 - reported on every invocation, as Lambda does
        handler, init_error = None, exc
    log = sys.stderr
    for line in sys.stdin:
        request = json.loads(line)
        capture = Capture(log)
        sys.stdout = sys.stderr = capture
        if init_error is not None:
            reply = {"ok": False, "payload": error(init_error)}
        else:
            try:
                event = json.loads(request["payload"]) if request["payload"] else {}
                reply = {"ok": True, "payload": json.dumps(handler(event, Context(request)))}
            except Exception as exc:  # noqa: BLE001 - a function error, reported to the caller
                reply = {"ok": False, "payload": error(exc)}
                print(reply["payload"])  # Lambda logs an unhandled error too
        sys.stdout = sys.stderr = log
        log.flush()
        reply["logs"] = capture.close()
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
