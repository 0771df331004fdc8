"""The board in Chromium against two stand-in regions in this process (tests/live/fake_regions.py):
the cross-region flow, a phone-sized page driven from the keyboard, and the sign-in with
API_AUTH=jwt."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.live.fake_regions import LOGIN_URL, Hub, Region, regions
from tests.live.pages import card, edit, open_board, two_regions_flow


@pytest.fixture(scope="module")
def stand_ins(live_database: str) -> Iterator[tuple[Hub, list[Region]]]:
    with regions(live_database) as made:
        yield made


@pytest.fixture(scope="module")
def two_regions(stand_ins: tuple[Hub, list[Region]]) -> list[Region]:
    return stand_ins[1]


def test_a_change_in_one_stand_in_region_shows_in_the_other(new_page: Any, two_regions: list[Region], artifacts: Path):
    """The flow tests/live/test_sandbox_board.py runs against the sandbox, here in this process:
    what the board does, apart from the deployment that delivers its changes."""
    east, west = two_regions
    a, b = open_board(new_page, east.url, "ana"), open_board(new_page, west.url, "bo")
    two_regions_flow(a, b, artifacts)

    # another lost race, and B discards its change: the saved version stays, in both pages
    a.fill("#new [name=title]", "Book the venue")
    a.click("#new button[type=submit]")
    card(b, "Book the venue").wait_for()
    edit(b, "Book the venue", priority="low")
    edit(a, "Book the venue", priority="urgent")
    a.click("#save")
    b.locator(".card[data-version='2']", has_text="Book the venue").wait_for()
    b.click("#save")
    b.locator("#conflict").wait_for()
    b.click("#discard")
    assert not b.locator("#editor").is_visible()
    assert card(b, "Book the venue").locator(".priority").inner_text() == "urgent"
    assert card(a, "Book the venue").get_attribute("data-version") == "2"

    # a task too large for one frame comes without its description ("partial"): B reads it whole
    long = "Café, thé, brûlée. " * 500  # 9,500 characters, over 32 KB as JSON (\u00e9 for each é)
    created = a.evaluate(
        """async (description) => (await fetch("/tasks", {method: "POST", body: JSON.stringify(
               {title: "Offsite agenda", created_by: "ana", description})})).status""",
        long,
    )
    assert created == 201
    card(b, "Offsite agenda").get_by_role("button", name="Edit Offsite agenda").click()
    assert b.locator("#editor [name=description]").input_value() == long


def test_a_new_filter_moves_the_subscription_on_the_same_connection(new_page: Any, stand_ins: tuple[Hub, list[Region]]):
    hub, (east, _west) = stand_ins
    before = set(hub.subscriptions_when(lambda sockets: True))
    page = open_board(new_page, east.url, "cy")

    def mine(sockets: dict[Any, list[Any]]) -> list[Any]:
        return [c for c in sockets if c not in before]

    (socket,) = mine(hub.subscriptions_when(lambda sockets: any(sockets[c] for c in mine(sockets))))
    assert hub.subscriptions_when(lambda sockets: True)[socket] == [{"all": True}]

    def show(**fields: str) -> None:
        for name, value in fields.items():
            page.fill(f"#filter [name={name}]", value)
        page.click("#filter button[type=submit]")

    show(assigned_to="di")
    assert hub.subscriptions_when(lambda s: s.get(socket) == [{"assignee": "di"}])[socket] == [{"assignee": "di"}]
    show(assigned_to="", project_id="7")
    hub.subscriptions_when(lambda s: s.get(socket) == [{"project": "7"}])
    show()  # the same filter again: nothing to take back or add
    show(project_id="")
    hub.subscriptions_when(lambda s: s.get(socket) == [{"all": True}])
    assert mine(hub.subscriptions_when(lambda s: True)) == [socket]  # never reconnected

    def sent(count: int) -> list[tuple[Any, ...]]:
        return [(m["action"], *(v for k, v in m.items() if k != "action")) for m in hub.sent_by(socket, count)]

    assert sent(7) == [
        ("subscribe", True),
        ("unsubscribe", True),
        ("subscribe", "di"),
        ("unsubscribe", "di"),
        ("subscribe", "7"),
        ("unsubscribe", "7"),
        ("subscribe", True),
    ]
    # Messages may be handled in either order (W13): answers that say the socket ended up other
    # than the filter wants make the board ask again, until it settles
    socket.send(json.dumps({"type": "unsubscribed", "all": True}))  # a late unsubscribe of what is wanted
    assert sent(8)[-1] == ("subscribe", True)
    socket.send(json.dumps({"type": "subscribed", "assignee": "di"}))  # a late subscribe of an old filter
    assert sent(9)[-1] == ("unsubscribe", "di")


def test_a_phone_sized_board_works_from_the_keyboard(new_page: Any, two_regions: list[Region], artifacts: Path):
    page = open_board(new_page, two_regions[0].url, "fy", viewport={"width": 390, "height": 844}, is_mobile=True)
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
                 .filter((e) => !e.labels.length && !e.getAttribute("aria-label")).map((e) => e.name || e.id)"""
    )
    assert unlabelled == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sideways to scroll
    assert len(page.evaluate("getComputedStyle(document.querySelector('.columns')).gridTemplateColumns").split()) == 1

    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("n")
    page.keyboard.type("Call the printer")
    page.keyboard.press("Enter")
    added = card(page, "Call the printer")
    added.wait_for()

    added.focus()
    page.keyboard.press("Enter")  # the editor, its title focused
    assert page.evaluate("document.activeElement.name") == "title"
    page.keyboard.press("End")
    page.keyboard.type(" back")
    page.keyboard.press("Enter")
    renamed = page.locator(".card[data-version='2']", has_text="Call the printer back")
    renamed.wait_for()
    # the socket may bring version 2 before the PATCH's answer closes the editor
    page.locator("#editor").wait_for(state="hidden")

    renamed.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # closes the editor, changing nothing
    assert not page.locator("#editor").is_visible()
    renamed.focus()
    page.keyboard.press("c")
    page.locator(".column[data-status=completed] .card", has_text="Call the printer back").wait_for()
    page.screenshot(path=str(artifacts / "phone.png"), full_page=True)


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A token shaped like the issuer's; the board reads its claims, the API checks the rest."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part(claims)}.c2lnbmF0dXJl"


def test_with_jwt_the_board_takes_a_pasted_or_hosted_login_token_and_sends_it(
    new_page: Any, live_database: str, monkeypatch: pytest.MonkeyPatch
):
    token = unsigned_jwt({"sub": "u-1", "preferred_username": "gus", "exp": int(time.time()) + 3600})
    monkeypatch.setenv("API_AUTH", "jwt")  # the function's environment: what config.json says
    monkeypatch.setenv("JWT_LOGIN_URL", LOGIN_URL)
    with regions(live_database, names=("us-east-1",), token=token) as (hub, [region]):
        page = new_page()
        page.goto(region.url + "/")
        page.locator("#signin").wait_for()
        assert not page.locator("#main").is_visible()
        href = page.locator("#login").get_attribute("href")
        assert href.startswith(LOGIN_URL + "&redirect_uri=" + quote(region.url + "/", safe=""))

        page.fill("#token", "not-a-token")
        page.click("#token-form button")
        assert "not a JWT" in page.locator("#problem").inner_text()
        page.fill("#token", token)
        page.click("#token-form button")  # stored for the tab, then the page reloads
        page.wait_for_selector("#live[data-state=live]")
        assert page.input_value("#me") == "gus"  # the name the token carries
        page.fill("#new [name=title]", "Signed work")
        with page.expect_response(lambda r: r.request.method == "POST") as created:
            page.click("#new button[type=submit]")
        assert created.value.status == 201  # the API saw the bearer token
        assert hub.paths[-1] == "/live?" + urlencode({"token": token})

        back = new_page()  # back from the hosted login, the token in the fragment
        back.goto(region.url + "/#id_token=" + token + "&token_type=Bearer")
        back.wait_for_selector("#live[data-state=live]")
        assert back.evaluate("location.hash") == ""  # not left in the address bar
        card(back, "Signed work").wait_for()
        card(back, "Signed work").get_by_role("button", name="Delete Signed work").click()
        card(back, "Signed work").wait_for(state="detached")
