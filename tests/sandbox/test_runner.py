"""The sandbox's function runner: code versions unpacked once, by the digest taken at upload."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import boto3
from moto import mock_aws
from moto.awslambda.models import lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID

from taskmgmt_deploy.emulator.awslambda import invocation_for
from taskmgmt_deploy.sandbox.runner import FunctionRunner

REGION = "us-east-1"


def package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


@mock_aws
def test_each_code_version_is_unpacked_once_by_its_upload_digest(tmp_path: Path):
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    first, second = package("def handler(e, c): return 1\n"), package("def handler(e, c): return 2\n")
    lam.create_function(
        FunctionName="fn", Runtime="python3.12", Role=role, Handler="app.handler", Code={"ZipFile": first}
    )
    backend = lambda_backends[DEFAULT_ACCOUNT_ID][REGION]
    runner = FunctionRunner(tmp_path, {})

    invocation = invocation_for(backend.get_function("fn"), b"{}", asynchronous=False)
    assert invocation.code_digest == hashlib.sha256(first).hexdigest()
    unpacked = runner._unpack(invocation.code, invocation.code_digest)
    assert unpacked == runner._unpack(first)  # the same directory as hashing the code here
    assert (unpacked / "app.py").read_text() == "def handler(e, c): return 1\n"

    lam.update_function_code(FunctionName="fn", ZipFile=second)
    updated = invocation_for(backend.get_function("fn"), b"{}", asynchronous=False)
    assert updated.code_digest == hashlib.sha256(second).hexdigest()
    assert (runner._unpack(updated.code, updated.code_digest) / "app.py").read_text() == "def handler(e, c): return 2\n"
    assert len(list((tmp_path / "code").iterdir())) == 2
