"""What the account offers, which moto does not model: which regions are enabled (Account's
GetRegionOptStatus) and the service quotas of Aurora DSQL (Service Quotas' ListServiceQuotas).

Regions launched before March 2019 are enabled by default; later ones must be opted into
(https://docs.aws.amazon.com/accounts/latest/reference/manage-acct-regions.html): the emulator
calls those DISABLED unless a test enables them, and a test can disable any region.
"""

from __future__ import annotations

import json
from typing import Any

from moto.account.responses import AccountResponse
from moto.servicequotas.responses import ServiceQuotasResponse

from taskmgmt_deploy.emulator.patching import Patches

OPT_IN = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-south-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ca-west-1",
        "eu-central-2",
        "eu-south-1",
        "eu-south-2",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
    }
)
MULTI_REGION_CLUSTERS = "Maximum number of multi-Region clusters"


class AccountFidelity:
    def __init__(self, multi_region_cluster_quota: int):
        self.multi_region_cluster_quota = multi_region_cluster_quota
        self.reset()

    def reset(self) -> None:
        self.region_status: dict[str, str] = {}  # what a test set, by region

    def get_region_opt_status(self, response: Any) -> tuple[int, dict[str, str], str]:
        region = json.loads(response.body or "{}")["RegionName"]
        default = "DISABLED" if region in OPT_IN else "ENABLED_BY_DEFAULT"
        return 200, {}, json.dumps({"RegionName": region, "RegionOptStatus": self.region_status.get(region, default)})

    def list_service_quotas(self, response: Any) -> str:
        code = json.loads(response.body or "{}").get("ServiceCode")
        quotas = []
        if code == "dsql":
            quotas.append(
                {
                    "ServiceCode": "dsql",
                    "ServiceName": "Amazon Aurora DSQL",
                    "QuotaArn": f"arn:aws:servicequotas:{response.region}:{response.current_account}:dsql/L-EMULATED",
                    "QuotaCode": "L-EMULATED",
                    "QuotaName": MULTI_REGION_CLUSTERS,
                    "Value": float(self.multi_region_cluster_quota),
                    "Unit": "None",
                    "Adjustable": True,
                    "GlobalQuota": False,
                }
            )
        return json.dumps({"Quotas": quotas})

    def install(self, patches: Patches) -> None:
        from moto.account import urls

        patches.route(urls.url_paths, "{0}/getRegionOptStatus$", AccountResponse.dispatch)
        patches.operation(AccountResponse, "GetRegionOptStatus", self.get_region_opt_status)
        patches.operation(ServiceQuotasResponse, "ListServiceQuotas", self.list_service_quotas)
