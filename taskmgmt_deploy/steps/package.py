"""The function package as a (local) resource, so it builds while the clusters come up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskmgmt_deploy.core.context import StepContext
from taskmgmt_deploy.core.models import Change, Observed, Record, Resource
from taskmgmt_deploy.core.step import Step
from taskmgmt_deploy.steps.packaging import Package, PackageBuilder


class LambdaPackageStep(Step):
    kind = "lambda_package"
    local = True

    def __init__(self, builder: PackageBuilder):
        self.builder = builder

    def read(self, res: Resource, record: Record | None) -> Observed | None:
        package = self.builder.cached()
        return None if package is None else Observed(outputs=_outputs(package), state="built")

    def apply(
        self, res: Resource, spec: Mapping[str, Any], change: Change, observed: Observed | None, ctx: StepContext
    ) -> dict[str, Any]:
        ctx.progress(f"building the function package for {self.builder.target.label}")
        return _outputs(self.builder.build())

    def delete(self, record: Record, ctx: StepContext) -> None:
        """Nothing in AWS: the cached zip stays for the next deploy."""


def _outputs(package: Package) -> dict[str, Any]:
    return {
        "id": package.inputs[:12],
        "path": str(package.path),
        "code_sha256": package.code_sha256,
        "size": package.size,
    }
