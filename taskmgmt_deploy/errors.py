"""Domain errors. Each carries the exit code the CLI uses for it."""

from __future__ import annotations


class TaskmgmtError(Exception):
    """Base class: a failure the user should see as one line."""

    exit_code = 1


class UserError(TaskmgmtError):
    """The user asked for something invalid: exit 2, nothing was changed."""

    exit_code = 2


class ConfigError(UserError):
    def __init__(self, key: str, value: object, rule: str):
        self.key, self.value, self.rule = key, value, rule
        super().__init__(f"{key}={value!r} is invalid: {rule}")


class ManifestError(UserError):
    """The manifest is missing, damaged or belongs to something else."""


class LockedError(UserError):
    """Another run holds the environment's lock."""


class ProtectedError(UserError):
    """Destroy refused: deletion protection is on."""


class StepError(TaskmgmtError):
    """A resource step failed; the manifest records what was done before it."""

    def __init__(self, key: str, cause: BaseException):
        self.key, self.cause = key, cause
        super().__init__(f"{key}: {one_line(cause)}")


class DeployFailed(TaskmgmtError):
    """One or more steps failed during a run."""

    def __init__(self, verb: str, failures: list[StepError]):
        self.failures = failures
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"{verb} failed at {first}{more}")


class Interrupted(TaskmgmtError):
    """Ctrl-C: in-flight calls finished and the manifest was flushed."""

    exit_code = 130


class WaitTimeout(TaskmgmtError):
    """A resource did not reach the wanted state in time."""


def step_error(key: str, exc: BaseException) -> StepError:
    return exc if isinstance(exc, StepError) else StepError(key, exc)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
