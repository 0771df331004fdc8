"""What the browser tests do on the board's pages, whichever regions serve them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

WITHIN = 1.0  # seconds from the change answered in one page to it shown in the other


def open_board(new_page: Any, url: str, name: str, **context: Any) -> Any:
    """The board at url, live, with `name` as who makes the changes."""
    page = new_page(**context)
    page.goto(url + "/")
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


def two_regions_flow(a: Any, b: Any, artifacts: Path) -> None:
    """Page A (one region) creates and edits a task; page B (the other region) sees each change
    within WITHIN; B's edit of a version A has already changed shows the conflict view, and
    B's re-applied change reaches A; A completes it, B deletes it."""
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
