"""scripts/mutations.py stays true to the code on every CI run, though `make mutants` (minutes)
does not run there: each snippet is still in its file, once; each named test exists; every
row of docs/pessimistic-emulation.md has a mutant that makes the emulator kinder, or a reason
it cannot have one."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from mutants import check  # noqa: E402
from mutations import CODE, MUTATIONS, NOTHING_TO_MAKE_KINDER  # noqa: E402

from tests.emulator.test_pessimistic_table import rows  # noqa: E402


def test_every_snippet_is_in_its_file_once():
    assert check(MUTATIONS) == []


def test_every_named_test_exists():
    for mutation in MUTATIONS:
        assert mutation.tests, mutation.name
        for test in mutation.tests:
            path, name = test.split("::")
            source = (ROOT / path).read_text()
            assert re.search(rf"^def {re.escape(name.split('[')[0])}\(", source, re.MULTILINE), (mutation.name, test)


def test_every_row_of_the_pessimistic_table_has_a_kinder_mutant_or_a_reason():
    table = {row for row, _ in rows()}
    covered = {m.row for m in MUTATIONS if m.row}
    assert covered <= table, covered - table
    assert covered.isdisjoint(NOTHING_TO_MAKE_KINDER)
    assert table == covered | set(NOTHING_TO_MAKE_KINDER), table - covered - set(NOTHING_TO_MAKE_KINDER)


def test_names_are_unique_and_there_are_at_least_fifteen_code_mutants():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))
    assert len(CODE) >= 15
