"""Make moto behave like AWS where this stack depends on it, and never kinder.

moto accepts much that AWS refuses and skips states AWS goes through. The fidelity layer
patches moto's backend classes, on an injected clock, so that where AWS's documentation or
the botocore model leaves a behaviour open the emulator takes the least forgiving reading,
and the tool has to work under it. docs/pessimistic-emulation.md lists every such choice:
the AWS behaviour, the documentation page it is read from, what the emulator does, and the
test that fails if the emulator becomes kinder.

One module per emulated service (dsql, iam, awslambda, events, cloudwatch, logs, sqs, sns, kms,
account), with alarms.py (alarm evaluation) and policy.py (IAM policy evaluation) beside them, installed
together by fidelity.Fidelity through patching.Patches; server.py runs it as a server (the
sandbox, the deploy benchmark, the tests). Used in-process by the tests too.
moto is pinned (pyproject.toml) because this patches its internals. Nothing is imported here, so
that server.free_port can be used without loading moto.
"""
