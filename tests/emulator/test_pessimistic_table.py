"""docs/pessimistic-emulation.md and the tests it names stay in step: every row names a test
that exists, and that test names its row back."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "pessimistic-emulation.md"


def rows() -> list[tuple[str, list[tuple[str, str]]]]:
    """(row id, [(test file, test name)]) for every row of every table."""
    found = []
    for line in TABLE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"[A-Z]\d+", cells[0]):
            found.append((cells[0], re.findall(r"(tests/[\w/]+\.py)::(\w+)", cells[-1])))
    return found


def test_every_row_names_a_test_that_exists_and_names_the_row_back():
    table = rows()
    ids = [row for row, _ in table]
    assert ids and len(ids) == len(set(ids)), f"row ids must be unique: {ids}"
    for row, tests in table:
        assert tests, f"row {row} names no test"
        for path, name in tests:
            source = (ROOT / path).read_text()
            test = re.search(rf"^def {name}\(.*?(?=^def |^@|\Z)", source, re.MULTILINE | re.DOTALL)
            assert test, f"row {row}: {path}::{name} does not exist"
            assert re.search(rf"\b{row}\b", test.group(0)), f"{path}::{name} does not name row {row}"
