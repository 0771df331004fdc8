"""GET /, GET /board/{file} and GET /board/config.json, through the API module (no database)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from task_processor import api, board


def http(path: str, method: str = "GET", headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """An HTTP API (payload 2.0) request, as API Gateway sends it."""
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "headers": headers or {},
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default"},
        **extra,
    }
    return api.handle(event, None, "r")  # the board never touches the app


@pytest.fixture
def site(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>Tasks</title>")
    (tmp_path / "board.js").write_text("const s = 'ü';")
    (tmp_path / "board.css").write_text("body{}")
    (tmp_path / "icon.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    (tmp_path / "notes.md").write_text("not served: unknown type")
    (tmp_path / ".hidden.js").write_text("not served: hidden")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.js").write_text("not served: below board/")
    (tmp_path.parent / "secret.js").write_text("never")
    (tmp_path / "link.js").symlink_to(tmp_path.parent / "secret.js")
    monkeypatch.setattr(board, "BOARD", board.Board(tmp_path))
    return tmp_path


def test_the_page_and_its_files_with_their_content_types(site):
    index = http("/")
    assert index["statusCode"] == 200 and index["body"] == "<!doctype html><title>Tasks</title>"
    assert index["headers"]["content-type"] == "text/html; charset=utf-8"
    assert index["headers"]["x-content-type-options"] == "nosniff"
    script = http("/board/board.js")
    assert (script["headers"]["content-type"], script["body"]) == ("text/javascript; charset=utf-8", "const s = 'ü';")
    assert http("/board/board.css")["headers"]["content-type"] == "text/css; charset=utf-8"
    icon = http("/board/icon.png")
    assert icon["headers"]["content-type"] == "image/png" and icon["isBase64Encoded"] is True
    assert base64.b64decode(icon["body"]) == b"\x89PNG\r\n\x1a\n\x00"


@pytest.mark.parametrize(
    "path",
    [
        "/board/notes.md",
        "/board/.hidden.js",
        "/board/link.js",
        "/board/sub",
        "/board/sub/x.js",
        "/board/..%2Fsecret.js",
        "/board/%2e%2e%2fsecret.js",
        "/board/../secret.js",
        "/board/..",
        "/board/",
        "/board/index.html%00.js",
        "/index.html",
    ],
)
def test_only_the_files_in_board_are_served(site, path):
    response = http(path)
    assert response["statusCode"] == 404, path
    assert "never" not in response["body"]


def test_a_cached_file_is_answered_304(site):
    first = http("/board/board.js")
    etag = first["headers"]["etag"]
    again = http("/board/board.js", headers={"if-none-match": f'"other", {etag}'})
    assert (again["statusCode"], again["body"]) == (304, "")
    assert http("/board/board.js", headers={"if-none-match": '"other"'})["statusCode"] == 200


def test_only_get_is_allowed(site):
    response = http("/board/board.js", method="POST")
    assert response["statusCode"] == 405 and response["headers"]["allow"] == "GET"


def test_config_comes_from_the_stage_variables_and_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    monkeypatch.setenv("API_AUTH", "jwt")
    monkeypatch.setenv("JWT_LOGIN_URL", "https://login.example.com/oauth2/authorize?client_id=app-1")
    stage = {"websocketUrl": "wss://abc.execute-api.us-east-2.amazonaws.com/live", "region": "us-east-2"}
    response = http("/board/config.json", stageVariables=stage)
    assert response["statusCode"] == 200 and response["headers"]["cache-control"] == "no-store"
    assert json.loads(response["body"]) == {
        "websocketUrl": "wss://abc.execute-api.us-east-2.amazonaws.com/live",
        "region": "us-east-2",
        "auth": "jwt",
        "loginUrl": "https://login.example.com/oauth2/authorize?client_id=app-1",
    }


def test_config_without_stage_variables_or_jwt(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("API_AUTH", raising=False)
    monkeypatch.setenv("JWT_LOGIN_URL", "https://ignored.example.com/")
    assert json.loads(http("/board/config.json")["body"]) == {
        "websocketUrl": None,
        "region": "us-east-1",
        "auth": "iam",
        "loginUrl": None,
    }


def test_the_shipped_board_is_served():
    """D's files in lambda/task_processor/board/: the page and what it links to."""
    shipped = board.Board()
    names = set(shipped.files())
    assert {"index.html", "board.js", "board.css"} <= names
    page = shipped.response("index.html")["body"]
    for name in ("board.js", "board.css"):
        assert f"/board/{name}" in page


def test_config_json_is_always_made_never_a_shipped_file(site, monkeypatch):
    (site / "config.json").write_text('{"websocketUrl": "wss://stale.example.com/live"}')
    monkeypatch.setattr(board, "BOARD", board.Board(site))
    stage = {"websocketUrl": "wss://abc.execute-api.us-east-1.amazonaws.com/live", "region": "us-east-1"}
    assert json.loads(http("/board/config.json", stageVariables=stage)["body"])["websocketUrl"] == stage["websocketUrl"]
