"""Make moto behave like AWS where this stack depends on it.

moto is more lenient than AWS (moto-notes.md, section 9). The fidelity layer patches moto's
backend classes so that, on an injected clock:
- DSQL clusters sit in PENDING_SETUP until peered, in PENDING_DELETE until the last peer
  is deleted, report UPDATING, refuse protected deletes with ValidationException, check
  witness and peers against the region sets, and use the real endpoint format;
- Lambda functions are Pending after create and InProgress after updates (and refuse
  updates meanwhile), cannot assume a role younger than the propagation delay, check that
  the role may send to an on-failure destination, refuse duplicate permission statement
  ids and reserved environment keys, and keep LoggingConfig;
- IAM refuses to delete an attached managed policy (DeleteConflict);
- EventBridge does not deliver through disabled rules, and delivers matching events to
  Lambda targets (checking the function's permission and SourceArn) instead of failing;
- CloudWatch dashboards are global and alarm parameters are validated; log retention
  must be one of the allowed values; SQS refuses a queue name deleted less than 60s ago.

Used by the tests (in-process with mock_aws) and by the sandbox's emulator process.
moto is pinned (pyproject.toml) because this patches its internals.
"""

from taskmgmt_deploy.emulator.fidelity import Fidelity, FidelitySettings, Invocation, Invoker

__all__ = ["Fidelity", "FidelitySettings", "Invocation", "Invoker"]
