"""What the browser tests do on the board's pages, whichever regions serve them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
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


@dataclass
class Watch:
    """How long each change took to show in the other page; a change slower than `within` fails."""

    within: float = WITHIN
    took: list[tuple[str, float]] = field(default_factory=list)

    def seen(self, page: Any, locator: Any, started: float, what: str) -> None:
        locator.wait_for(state="visible", timeout=max(self.within * 3, 5) * 1000)
        self._took(what, started)

    def gone(self, page: Any, locator: Any, started: float, what: str) -> None:
        locator.wait_for(state="detached", timeout=max(self.within * 3, 5) * 1000)
        self._took(what, started)

    def _took(self, what: str, started: float) -> None:
        took = time.monotonic() - started
        self.took.append((what, round(took, 3)))
        assert took <= self.within, f"{what}: shown after {took:.2f} s"

    def save(self, artifacts: Path) -> None:
        (artifacts / "latencies.json").write_text(json.dumps({"within": self.within, "took": self.took}, indent=2))


def edit(page: Any, which: str, **values: str) -> None:
    card(page, which).get_by_role("button", name=f"Edit {which}").click()
    dialog = page.locator("#editor")
    for name, value in values.items():
        field = dialog.locator(f"[name={name}]")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def lose_the_race(a: Any, b: Any, artifacts: Path, watch: Watch) -> None:
    """B opens the editor on version 2; meanwhile A saves version 3; B's save loses the race."""
    edit(b, "Plan the launch", priority="urgent", title="Plan the launch party")
    edit(a, "Plan the launch", assigned_to="ed")
    with a.expect_response(lambda r: r.request.method == "PATCH") as saved:
        a.click("#save")
    assert saved.value.status == 200
    watch.seen(b, b.locator(".card[data-version='3']", has_text="Plan the launch"), time.monotonic(), "A's 2nd edit")
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


WARM_UP = """async (titles) => Promise.all(titles.map(async (title) => (await fetch("/tasks", {
    method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({title, created_by: "warm-up"})})).status))"""
DELETE_ALL = """async (prefix) => {
    const {tasks} = await (await fetch("/tasks?limit=100")).json();
    return Promise.all(tasks.filter((t) => t.title.startsWith(prefix))
        .map(async (t) => (await fetch(`/tasks/${t.id}`, {method: "DELETE"})).status));
}"""


def warm_up(a: Any, b: Any, changes: int = 3) -> None:
    """A few changes at once from each page, each seen in the other, untimed: every function
    environment the timed changes may land on has started (the first one in a new environment
    pays its cold start, as on Lambda), and both regions' broadcasts have run."""
    for page, other, region in ((a, b, "a"), (b, a, "b")):
        titles = [f"warm-up {region}{n}" for n in range(changes)]
        assert page.evaluate(WARM_UP, titles) == [201] * changes
        for title in titles:
            card(other, title).wait_for(timeout=30_000)
    assert set(a.evaluate(DELETE_ALL, "warm-up ")) == {204}
    a.locator(".card", has_text="warm-up ").first.wait_for(state="detached", timeout=30_000)
    b.locator(".card", has_text="warm-up ").first.wait_for(state="detached", timeout=30_000)


def two_regions_flow(a: Any, b: Any, artifacts: Path, within: float = WITHIN) -> Watch:
    """Page A (one region) creates and edits a task; page B (the other region) sees each change
    within `within` seconds, without a reload; B's edit of a version A has already changed shows the conflict view, and
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
    watch = Watch(within)
    watch.seen(b, b.locator(".column[data-status=pending] .card", has_text="Plan the launch"), started, "A's create")
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
    watch.seen(b, moved, started, "A's edit")
    assert moved.locator("[data-field=assigned_to]").inner_text() == "di"
    a.screenshot(path=str(artifacts / "page-a.png"), full_page=True)
    b.screenshot(path=str(artifacts / "page-b.png"), full_page=True)

    lose_the_race(a, b, artifacts, watch)

    # B re-applies its changes on version 3: saved as version 4, which A sees
    with b.expect_response(lambda r: r.request.method == "PATCH") as reapplied:
        b.click("#reapply")
    assert reapplied.value.status == 200
    started = time.monotonic()
    final = a.locator(".card[data-version='4']", has_text="Plan the launch party")
    watch.seen(a, final, started, "B's re-applied edit")
    assert final.locator(".priority").inner_text() == "urgent"
    assert final.locator("[data-field=assigned_to]").inner_text() == "ed"  # A's change was kept
    b.locator("#editor").wait_for(state="hidden")  # once B has read the PATCH's answer

    # A completes it, B deletes it: each seen in the other page
    with a.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/complete")) as completed:
        final.get_by_role("button", name="Complete Plan the launch party").click()
    assert completed.value.status == 200
    started = time.monotonic()
    done = b.locator(".column[data-status=completed] .card", has_text="Plan the launch party")
    watch.seen(b, done, started, "A's completion")
    with b.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        card(b, "Plan the launch party").get_by_role("button", name="Delete Plan the launch party").click()
    assert deleted.value.status == 204
    watch.gone(a, card(a, "Plan the launch party"), time.monotonic(), "B's delete")
    b.screenshot(path=str(artifacts / "page-b-final.png"), full_page=True)
    watch.save(artifacts)
    return watch
