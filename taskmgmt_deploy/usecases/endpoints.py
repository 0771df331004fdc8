"""Where a deployed stack's APIs answer: GetApi's ApiEndpoint (never built from the id), for the
HTTP API `{prefix}-{env}-tasks` and the WebSocket API `{prefix}-{env}-live` (stage `live`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskmgmt_deploy.aws.clients import AwsClients
from taskmgmt_deploy.stack.config import StackConfig

WEBSOCKET_STAGE = "live"


@dataclass(frozen=True)
class RegionApis:
    region: str
    http_url: str | None  # the HTTP API's ApiEndpoint ($default stage: no path)
    websocket_url: str | None  # the WebSocket API's ApiEndpoint and its stage


class Endpoints:
    def __init__(self, aws: AwsClients, config: StackConfig):
        self.aws, self.config = aws, config

    def of(self, region: str) -> RegionApis:
        wanted = {self.config.name("tasks"): "HTTP", self.config.name("live"): "WEBSOCKET"}
        found: dict[str, str] = {}
        client = self.aws.get("apigatewayv2", region)
        token: str | None = None
        while True:
            page: dict[str, Any] = client.get_apis(**({"NextToken": token} if token else {}))
            for api in page.get("Items", []):
                if wanted.get(api.get("Name")) == api.get("ProtocolType") and api.get("ApiEndpoint"):
                    found[api["ProtocolType"]] = str(api["ApiEndpoint"]).rstrip("/")
            token = page.get("NextToken")
            if not token:
                break
        socket = found.get("WEBSOCKET")
        return RegionApis(region, found.get("HTTP"), f"{socket}/{WEBSOCKET_STAGE}" if socket else None)
