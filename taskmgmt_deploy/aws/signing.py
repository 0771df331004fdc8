"""SigV4 signatures for API Gateway (`execute-api`): what an AWS_IAM route and the WebSocket
API's `$connect` require of the caller, signed with the operator's credentials."""

from __future__ import annotations

from collections.abc import Mapping

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from taskmgmt_deploy.aws.errors import NO_CREDENTIALS
from taskmgmt_deploy.errors import UserError


class Signer:
    def __init__(self, session: boto3.Session):
        self.session = session

    def headers(
        self, method: str, url: str, region: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The given headers plus Authorization, X-Amz-Date (and the session token), signed for url.
        A ws:// or wss:// URL is signed as the http(s) request its handshake is."""
        credentials = self.session.get_credentials()
        if credentials is None:
            raise UserError(NO_CREDENTIALS)
        http_url = "http" + url[2:] if url.startswith("ws") else url
        request = AWSRequest(method=method, url=http_url, data=body, headers=dict(headers or {}))
        SigV4Auth(credentials.get_frozen_credentials(), "execute-api", region).add_auth(request)
        return dict(request.headers.items())
