"""Two browser pages on the board, one per region: a change made in one shows in the other
within a second, without a reload; an edit that lost the race shows the conflict view."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from tests.live.fake_regions import LOGIN_URL, Region, regions

WITHIN = 1.0  # seconds from the change answered in one page to it shown in the other


@pytest.fixture(scope="module")
def two_regions(live_database: str) -> Iterator[list[Region]]:
    with regions(live_database) as (_hub, made):
        yield made


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Pages, each in its own browser context (its own storage), closed after the test: a page
    left open keeps its socket, and the stand-in regions wait for sockets when they stop."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        contexts.append(browser.new_context(**options))
        page = contexts[-1].new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # yes to "Delete ...?"
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()


def open_board(new_page: Any, region: Region, name: str, **context: Any) -> Any:
    page = new_page(**context)
    page.goto(region.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_selector("#live[data-state=live]", timeout=5000)
    page.fill("#me", name)
    return page


def card(page: Any, title: str) -> Any:
    return page.locator(".card", has=page.locator("h3", has_text=title))


def seen_within(page: Any, selector_or_locator: Any, started: float) -> float:
    """Seconds from `started` until it is visible in `page`; fails past WITHIN."""
    locator = page.locator(selector_or_locator) if isinstance(selector_or_locator, str) else selector_or_locator
    locator.wait_for(state="visible", timeout=WITHIN * 1000 * 3)
    took = time.monotonic() - started
    assert took <= WITHIN, f"shown after {took:.2f} s"
    return took


def edit(page: Any, which: str, **values: str) -> None:
    card(page, which).get_by_role("button", name=f"Edit {which}").click()
    dialog = page.locator("#editor")
    for name, value in values.items():
        field = dialog.locator(f"[name={name}]")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def lose_the_race(a: Any, b: Any, artifacts: Path) -> None:
    """B opens the editor on version 2; meanwhile A saves version 3; B's save loses the race."""
    edit(b, "Plan the launch", priority="urgent", title="Plan the launch party")
    edit(a, "Plan the launch", assigned_to="ed")
    a.click("#save")
    seen_within(b, b.locator(".card[data-version='3']", has_text="Plan the launch"), time.monotonic())
    with b.expect_response(lambda r: r.request.method == "PATCH") as lost:
        b.click("#save")
    assert lost.value.status == 409
    conflict = b.locator("#conflict")
    conflict.wait_for(state="visible")
    assert conflict.locator("[data-current-version]").inner_text() == "3"
    rows = {
        row.get_attribute("data-field"): (
            row.locator("[data-side=saved]").inner_text(),
            row.locator("[data-side=yours]").inner_text(),
        )
        for row in conflict.locator("tr[data-field]").all()
    }
    assert rows == {
        "title": ("Plan the launch", "Plan the launch party"),
        "priority": ("high", "urgent"),
        "assigned_to": ("ed", "(you left it)"),
    }
    b.screenshot(path=str(artifacts / "page-b-conflict.png"), full_page=True)


def test_a_change_in_one_region_shows_in_the_other_and_a_lost_race_shows_the_conflict(
    new_page: Any, two_regions: list[Region], artifacts: Path
):
    east, west = two_regions
    a, b = open_board(new_page, east, "ana"), open_board(new_page, west, "bo")
    assert a.locator("#region").inner_text() == f"region {east.name}"
    assert b.locator("#region").inner_text() == f"region {west.name}"

    # A creates: B sees it in Pending
    a.fill("#new [name=title]", "Plan the launch")
    a.fill("#new [name=assigned_to]", "cy")
    a.fill("#new [name=due_date]", "2026-12-24")
    a.select_option("#new [name=priority]", "high")
    with a.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/tasks")) as created:
        a.click("#new button[type=submit]")
    assert created.value.status == 201
    started = time.monotonic()
    seen_within(b, b.locator(".column[data-status=pending]").locator(".card", has_text="Plan the launch"), started)
    shown = card(b, "Plan the launch")
    assert shown.locator("[data-field=assigned_to]").inner_text() == "cy"
    assert shown.locator("[data-field=due_date]").inner_text() == "2026-12-24"

    # A edits (moves it to In progress, reassigns it): B sees version 2 there
    edit(a, "Plan the launch", status="in-progress", assigned_to="di")
    with a.expect_response(lambda r: r.request.method == "PATCH") as patched:
        a.click("#save")
    assert patched.value.status == 200
    started = time.monotonic()
    moved = b.locator(".column[data-status=in-progress] .card[data-version='2']", has_text="Plan the launch")
    seen_within(b, moved, started)
    assert moved.locator("[data-field=assigned_to]").inner_text() == "di"
    a.screenshot(path=str(artifacts / "page-a.png"), full_page=True)
    b.screenshot(path=str(artifacts / "page-b.png"), full_page=True)

    lose_the_race(a, b, artifacts)

    # B re-applies its changes on version 3: saved as version 4, which A sees
    with b.expect_response(lambda r: r.request.method == "PATCH") as reapplied:
        b.click("#reapply")
    assert reapplied.value.status == 200
    started = time.monotonic()
    final = a.locator(".card[data-version='4']", has_text="Plan the launch party")
    seen_within(a, final, started)
    assert final.locator(".priority").inner_text() == "urgent"
    assert final.locator("[data-field=assigned_to]").inner_text() == "ed"  # A's change was kept
    assert not b.locator("#editor").is_visible()

    # A completes it, B deletes it: each seen in the other page
    final.get_by_role("button", name="Complete Plan the launch party").click()
    done = b.locator(".column[data-status=completed] .card", has_text="Plan the launch party")
    seen_within(b, done, time.monotonic())
    card(b, "Plan the launch party").get_by_role("button", name="Delete Plan the launch party").click()
    card(a, "Plan the launch party").wait_for(state="detached", timeout=WITHIN * 1000)
    b.screenshot(path=str(artifacts / "page-b-final.png"), full_page=True)


def test_a_phone_sized_board_works_from_the_keyboard(new_page: Any, two_regions: list[Region], artifacts: Path):
    page = open_board(new_page, two_regions[0], "fy", viewport={"width": 390, "height": 844}, is_mobile=True)
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
    assert not page.locator("#editor").is_visible()

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
