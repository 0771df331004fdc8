"""The WebSocket routes: $connect, $disconnect, subscribe, unsubscribe, ping and $default, against PostgreSQL."""

from __future__ import annotations

import json

import pytest

from task_processor import contract, subscriptions
from task_processor.db import Database, url_connect
from task_processor.live import LiveApp
from task_processor.management import Poster, management_endpoint
from tests.function.conftest import FakeManagement, ws_event

ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/live"


@pytest.fixture
def live(live_url: str, management: FakeManagement) -> LiveApp:
    return LiveApp(Database(url_connect(live_url)), Poster(management.client, workers=4), None, "us-east-1")


def rows(live: LiveApp, sql: str) -> list[dict]:
    return live.db.read(lambda conn: conn.execute(sql).fetchall())


def connect(live: LiveApp, connection_id: str, **kwargs) -> dict:
    return live.handle(ws_event("$connect", connection_id, **kwargs))


def send(live: LiveApp, connection_id: str, body, **kwargs) -> dict:
    route = body.get("action", "$default") if isinstance(body, dict) else "$default"
    routed = route in contract.SOCKET_ACTIONS
    return live.handle(ws_event(route if routed else "$default", connection_id, body, **kwargs))


def test_connect_records_the_connection_its_region_endpoint_and_expiry(live: LiveApp):
    assert connect(live, "conn-1") == {"statusCode": 200}
    [row] = rows(
        live,
        "SELECT connection_id, region, endpoint, expires_at - connected_at AS ttl, principal FROM connections",
    )
    assert (row["connection_id"], row["region"], row["endpoint"]) == ("conn-1", "us-east-1", ENDPOINT)
    assert row["ttl"].total_seconds() == 2 * 3600 and row["principal"] is None


def test_a_second_connect_of_the_same_connection_keeps_one_row(live: LiveApp):
    connect(live, "conn-1")
    connect(live, "conn-1", domain="127.0.0.1:4510")
    assert [r["endpoint"] for r in rows(live, "SELECT endpoint FROM connections")] == ["http://127.0.0.1:4510/live"]


@pytest.mark.parametrize(
    "domain,stage,endpoint",
    [
        ("abc.execute-api.eu-west-1.amazonaws.com", "live", "https://abc.execute-api.eu-west-1.amazonaws.com/live"),
        ("127.0.0.1:4510", "live", "http://127.0.0.1:4510/live"),
        ("localhost:8080", "live", "http://localhost:8080/live"),
        ("[::1]:8080", "live", "http://[::1]:8080/live"),
        ("127.0.0.1.example.com", "live", "https://127.0.0.1.example.com/live"),  # not loopback: https
    ],
)
def test_the_management_endpoint_is_https_except_on_loopback(domain, stage, endpoint):
    assert management_endpoint(domain, stage) == endpoint


def test_subscribe_is_stored_and_answered_through_the_management_api(live: LiveApp, management: FakeManagement):
    connect(live, "conn-1")
    for body in ({"project": 42}, {"project": "7"}, {"assignee": "ana"}, {"all": True}):
        assert send(live, "conn-1", {"action": "subscribe", **body}) == {"statusCode": 200}
    assert management.received("conn-1") == [
        {"type": "subscribed", "project": 42},
        {"type": "subscribed", "project": 7},
        {"type": "subscribed", "assignee": "ana"},
        {"type": "subscribed", "all": True},
    ]
    assert {(endpoint, region) for endpoint, region, _, _ in management.posts} == {(ENDPOINT, "us-east-1")}
    topics = sorted(r["topic"] for r in rows(live, "SELECT topic FROM subscriptions"))
    assert topics == ["all", "assignee:ana", "project:42", "project:7"]


def test_subscribing_twice_keeps_one_subscription(live: LiveApp, management: FakeManagement):
    connect(live, "conn-1")
    send(live, "conn-1", {"action": "subscribe", "all": True})
    send(live, "conn-1", {"action": "subscribe", "all": True})
    assert len(rows(live, "SELECT topic FROM subscriptions")) == 1
    assert management.received("conn-1") == [{"type": "subscribed", "all": True}] * 2


def test_a_connection_has_a_bounded_number_of_subscriptions(live: LiveApp, management: FakeManagement):
    connect(live, "conn-1")
    for project in range(subscriptions.MAX_SUBSCRIPTIONS + 1):
        send(live, "conn-1", {"action": "subscribe", "project": project})
    assert len(rows(live, "SELECT topic FROM subscriptions")) == subscriptions.MAX_SUBSCRIPTIONS
    assert management.received("conn-1")[-1]["type"] == "error"


def test_unsubscribe_takes_back_one_subscription_and_is_idempotent(live: LiveApp, management: FakeManagement):
    connect(live, "conn-1")
    connect(live, "conn-2")
    for connection in ("conn-1", "conn-2"):
        send(live, connection, {"action": "subscribe", "all": True})
    send(live, "conn-1", {"action": "subscribe", "project": 42})
    assert send(live, "conn-1", {"action": "unsubscribe", "all": True}) == {"statusCode": 200}
    assert send(live, "conn-1", {"action": "unsubscribe", "all": True}) == {"statusCode": 200}  # not any more: the same
    assert management.received("conn-1")[-2:] == [{"type": "unsubscribed", "all": True}] * 2
    topics = sorted((r["connection_id"], r["topic"]) for r in rows(live, "SELECT * FROM subscriptions"))
    assert topics == [("conn-1", "project:42"), ("conn-2", "all")]  # conn-2's "all" stays
    found = live.db.read(lambda conn: subscriptions.subscribers(conn, ["all", "project:42"], ""))
    assert sorted(s.connection_id for s in found) == ["conn-1", "conn-2"]
    send(live, "conn-1", {"action": "unsubscribe", "project": "42"})
    found = live.db.read(lambda conn: subscriptions.subscribers(conn, ["all", "project:42"], ""))
    assert [s.connection_id for s in found] == ["conn-2"]


def test_ping_is_answered_with_pong(live: LiveApp, management: FakeManagement):
    connect(live, "conn-1")
    assert send(live, "conn-1", {"action": "ping"}) == {"statusCode": 200}
    assert management.received("conn-1") == [{"type": "pong"}]


@pytest.mark.parametrize(
    "body,complaint",
    [
        ("not json", "JSON object"),
        ("[1]", "JSON object"),
        ({"action": "dance"}, "unknown action 'dance'"),
        ({"action": "subscribe"}, "one of"),
        ({"action": "subscribe", "project": 1, "all": True}, "one of"),
        ({"action": "subscribe", "all": False}, "all must be true"),
        ({"action": "subscribe", "project": "p"}, "project id"),
        ({"action": "subscribe", "project": True}, "project id"),
        ({"action": "subscribe", "project": -1}, "project id"),
        ({"action": "subscribe", "assignee": ""}, "assignee"),
        ({"action": "subscribe", "assignee": "x" * 101}, "assignee"),
        ({"action": "unsubscribe"}, "unsubscribe from one of"),
        ({"action": "unsubscribe", "project": "p"}, "project id"),
        ("x" * (32 * 1024 + 1), "at most"),
    ],
)
def test_a_bad_message_gets_one_error_message_back(live: LiveApp, management: FakeManagement, body, complaint):
    connect(live, "conn-1")
    assert send(live, "conn-1", body)["statusCode"] == 400
    [reply] = management.received("conn-1")
    assert reply["type"] == "error" and reply["error"] == "invalid_request" and complaint in reply["message"]
    assert rows(live, "SELECT topic FROM subscriptions") == []


def test_subscribe_on_an_unknown_or_expired_connection_asks_to_connect_again(live: LiveApp, management):
    assert send(live, "ghost", {"action": "subscribe", "all": True})["statusCode"] == 404
    connect(live, "conn-1")
    live.db.transaction(lambda conn: conn.execute("UPDATE connections SET expires_at = now() - interval '1 second'"))
    assert send(live, "conn-1", {"action": "subscribe", "all": True})["statusCode"] == 404
    assert [m["message"] for m in management.received("conn-1")] == [
        "this connection is not registered any more: connect again"
    ]


def test_disconnect_deletes_the_connection_and_its_subscriptions_only(live: LiveApp):
    for cid in ("conn-1", "conn-2"):
        connect(live, cid)
        send(live, cid, {"action": "subscribe", "all": True})
        send(live, cid, {"action": "subscribe", "assignee": "ana"})
    assert live.handle(ws_event("$disconnect", "conn-1")) == {"statusCode": 200}
    assert live.handle(ws_event("$disconnect", "conn-1")) == {"statusCode": 200}  # again: nothing left to do
    assert [r["connection_id"] for r in rows(live, "SELECT connection_id FROM connections")] == ["conn-2"]
    assert {r["connection_id"] for r in rows(live, "SELECT connection_id FROM subscriptions")} == {"conn-2"}


def test_a_reply_to_a_connection_that_is_gone_is_not_an_error(live: LiveApp, management: FakeManagement):
    connect(live, "conn-1")
    management.gone.add("conn-1")
    assert send(live, "conn-1", {"action": "ping"}) == {"statusCode": 200}


def test_an_unexpected_failure_is_a_500_without_details(live: LiveApp, monkeypatch, capsys):
    def explode(*args, **kwargs):
        raise RuntimeError("secret")

    monkeypatch.setattr(subscriptions, "add_connection", explode)
    assert connect(live, "conn-1") == {"statusCode": 500}
    assert "websocket request failed" in capsys.readouterr().out


def test_websocket_events_reach_the_live_routes_through_the_handler(live_url, monkeypatch, management):
    import task_processor.handler as handler_module
    from task_processor import live as live_module

    monkeypatch.setenv("TASKMGMT_DATABASE_URL", live_url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setattr(handler_module, "_app", None)
    monkeypatch.setattr(handler_module, "_live", None)
    monkeypatch.setattr(live_module, "Poster", lambda: Poster(management.client, workers=2))
    assert handler_module.lambda_handler(ws_event("$connect", "c9"), None) == {"statusCode": 200}
    assert handler_module.lambda_handler(ws_event("ping", "c9", {"action": "ping"}), None) == {"statusCode": 200}
    assert management.posts == [(ENDPOINT, "eu-west-1", "c9", {"type": "pong"})]
    assert handler_module.lambda_handler(ws_event("$disconnect", "c9"), None) == {"statusCode": 200}
    body = json.loads(handler_module.lambda_handler({"hello": "world"}, None)["body"])
    assert body["error"] == "invalid_request"
