"""Make moto behave like AWS where this stack depends on it, and never kinder.

moto accepts much that AWS refuses and skips states AWS goes through. The fidelity layer
patches moto's backend classes, on an injected clock, so that where AWS's documentation or
the botocore model leaves a behaviour open the emulator takes the least forgiving reading,
and the tool has to work under it. docs/pessimistic-emulation.md lists every such choice:
the AWS behaviour, the documentation page it is read from, what the emulator does, and the
test that fails if the emulator becomes kinder.

Used by the tests (in-process with mock_aws) and by the sandbox's emulator process.
moto is pinned (pyproject.toml) because this patches its internals.
"""

from taskmgmt_deploy.emulator.fidelity import Fidelity, FidelitySettings, Invocation, Invoker

__all__ = ["Fidelity", "FidelitySettings", "Invocation", "Invoker"]
