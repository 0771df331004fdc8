"""The task board: its static files (board/, shipped in the function package) at GET / and
GET /board/{file}, and GET /board/config.json, what the page needs to go live.

Only the files found in board/ when the function starts are served, by their exact names: a
name is looked up in that listing, never joined to a path, so nothing outside board/ can be
named. Each answer carries an ETag; a request whose If-None-Match names it gets a 304.

config.json: the WebSocket URL and region come from the HTTP API's stage variables (the
function's environment carries no API URL: that would be a dependency cycle); the auth mode
and the hosted login from the function's environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from task_processor.contract import (
    ENV_API_AUTH,
    ENV_JWT_LOGIN_URL,
    STAGE_VARIABLE_REGION,
    STAGE_VARIABLE_WEBSOCKET_URL,
)
from task_processor.errors import NotFound

BOARD_DIR = Path(__file__).with_name("board")
INDEX = "index.html"
CONFIG = "config.json"  # GET /board/config.json: answered, never a file of board/
TEXT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
BINARY_TYPES = {".png": "image/png", ".ico": "image/x-icon", ".woff2": "font/woff2"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$")
COMMON_HEADERS = {"x-content-type-options": "nosniff", "cache-control": "no-cache"}


@dataclass(frozen=True)
class StaticFile:
    content_type: str
    body: str  # text, or base64 for a binary file
    base64_encoded: bool
    etag: str


class Board:
    def __init__(self, directory: Path = BOARD_DIR):
        self.directory = directory
        self._files: dict[str, StaticFile] | None = None

    def files(self) -> dict[str, StaticFile]:
        """The servable files, read once per execution environment."""
        if self._files is None:
            self._files = {}
            listing = sorted(self.directory.iterdir()) if self.directory.is_dir() else []
            for path in listing:
                suffix = path.suffix.lower()
                if not (path.is_file() and not path.is_symlink() and _NAME.match(path.name)):
                    continue
                if suffix not in TEXT_TYPES and suffix not in BINARY_TYPES:
                    continue
                data = path.read_bytes()
                etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
                if suffix in TEXT_TYPES:
                    self._files[path.name] = StaticFile(TEXT_TYPES[suffix], data.decode("utf-8"), False, etag)
                else:
                    body = base64.b64encode(data).decode("ascii")
                    self._files[path.name] = StaticFile(BINARY_TYPES[suffix], body, True, etag)
        return self._files

    def response(self, name: str, if_none_match: str | None = None) -> dict[str, Any]:
        found = self.files().get(name)
        if found is None:
            raise NotFound(f"the board has no file {name[:100]!r}")
        headers = {"content-type": found.content_type, "etag": found.etag, **COMMON_HEADERS}
        if if_none_match and found.etag in (tag.strip() for tag in if_none_match.split(",")):
            return {"statusCode": 304, "headers": headers, "body": ""}
        return {"statusCode": 200, "headers": headers, "body": found.body, "isBase64Encoded": found.base64_encoded}


BOARD = Board()


def config(stage_variables: dict[str, str]) -> dict[str, Any]:
    auth = os.environ.get(ENV_API_AUTH, "iam").lower()
    return {
        "websocketUrl": stage_variables.get(STAGE_VARIABLE_WEBSOCKET_URL) or None,
        "region": stage_variables.get(STAGE_VARIABLE_REGION) or os.environ.get("AWS_REGION"),
        "auth": auth,
        "loginUrl": (os.environ.get(ENV_JWT_LOGIN_URL) or None) if auth == "jwt" else None,
    }


def config_response(stage_variables: dict[str, str]) -> dict[str, Any]:
    headers = {"content-type": "application/json", "x-content-type-options": "nosniff", "cache-control": "no-store"}
    return {"statusCode": 200, "headers": headers, "body": json.dumps(config(stage_variables))}
