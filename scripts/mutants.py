"""make mutants: plant each bug of scripts/mutations.py, one at a time, in a scratch copy of the
working tree, run the tests named for it, and print whether they caught it (killed) or not
(survived), and how long each took.

    python scripts/mutants.py                 # every mutant, two at a time
    python scripts/mutants.py --only D15 lock # the mutants whose name contains any of these
    python scripts/mutants.py --list          # the mutants, without running anything

First every edit is checked against the code (a snippet that does not occur exactly once stops
the run: the list must not rot), then the tests of the selected mutants run once unmutated and
must pass (else "killed" would mean nothing). Exit 0 when every mutant is killed, 1 when one
survives, 2 when the list or the tests are broken.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600.0  # seconds one mutant's tests may take; a hang counts as caught (and says so)


def check(mutations: list[Mutation], root: Path = ROOT) -> list[str]:
    """Why an edit cannot be planted as written: its snippet is missing, or not unique."""
    problems = []
    for mutation in mutations:
        for edit in mutation.edits:
            text = (root / edit.path).read_text()
            found = text.count(edit.old)
            if found != 1 or edit.old == edit.new:
                problems.append(f"{mutation.name}: {edit.path}: the snippet occurs {found} times (must be once)")
    return problems


def scratch_copy() -> Path:
    """The working tree as it is now (tracked and new files, not ignored ones), in a temporary directory."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    copy = Path(tempfile.mkdtemp(prefix="taskmgmt-mutants-"))
    for name in filter(None, (entry.decode() for entry in listed)):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def pytest(copy: Path, tests: list[str], *options: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy)}  # the copy's code, not the editable install's
    # --tb=native: only the exit code counts here, and pytest's own traceback rendering (it
    # re-parses source files) can crash on CPython 3.11 with "AST constructor recursion depth
    # mismatch", which turns a killed mutant into an internal error (exit 3)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=native", *options, *tests],
        check=False,
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def imports_from(copy: Path) -> None:
    probe = "import taskmgmt_deploy, sys; sys.path.insert(0, 'lambda'); import task_processor; "
    probe += "print(taskmgmt_deploy.__file__); print(task_processor.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    stray = [path for path in out if not Path(path).resolve().is_relative_to(copy.resolve())]
    if stray:
        raise SystemExit(f"the scratch copy would test other code: {stray}")


def run_one(mutation: Mutation, copy: Path) -> tuple[str, float, str]:
    """Plant it, run its tests, take it out: (outcome, seconds, the last line pytest printed)."""
    originals = {edit.path: (copy / edit.path).read_text() for edit in mutation.edits}
    try:
        for edit in mutation.edits:
            path = copy / edit.path
            path.write_text(path.read_text().replace(edit.old, edit.new, 1))
        start = time.monotonic()
        try:
            done = pytest(copy, list(mutation.tests), "-x")
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.monotonic() - start, f"no answer in {TIMEOUT:.0f}s"
        seconds = time.monotonic() - start
        last = (done.stdout.strip().splitlines() or [""])[-1]
        outcome = {0: "SURVIVED", 1: "killed"}.get(done.returncode, f"error (pytest exit {done.returncode})")
        return outcome, seconds, last
    finally:
        for path, text in originals.items():
            (copy / path).write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="run the mutants whose name contains one of these")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (one scratch copy each)")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the tests")
    args = parser.parse_args(argv)

    chosen = [m for m in MUTATIONS if not args.only or any(word in m.name for word in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name:45} {m.bug}")
        return 0
    problems = check(chosen)
    if problems:
        print("the mutation list no longer matches the code:", *problems, sep="\n  ", file=sys.stderr)
        return 2
    if not chosen:
        print("no mutant matches", args.only, file=sys.stderr)
        return 2

    started = time.monotonic()
    copies = [scratch_copy() for _ in range(max(1, min(args.jobs, len(chosen))))]
    try:
        imports_from(copies[0])
        if not args.no_baseline:
            tests = sorted({test for m in chosen for test in m.tests})
            print(f"baseline: {len(tests)} tests, unmutated ...", flush=True)
            baseline = pytest(copies[0], tests, "-n", str(len(copies)))
            if baseline.returncode != 0:
                print(baseline.stdout[-3000:], baseline.stderr[-2000:], sep="\n", file=sys.stderr)
                print("the tests fail without any mutant: fix them first", file=sys.stderr)
                return 2
        results = run_all(chosen, copies)
    finally:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)

    width = max(len(m.name) for m in chosen)
    print(f"\n| {'mutant':{width}} | row | result           | seconds |")
    print(f"|{'-' * (width + 2)}|-----|------------------|---------|")
    for mutation, (outcome, seconds, _) in zip(chosen, results, strict=True):
        print(f"| {mutation.name:{width}} | {mutation.row or '':3} | {outcome:16} | {seconds:7.1f} |")
    killed = sum(outcome.startswith("killed") for outcome, _, _ in results)
    print(f"\n{killed} of {len(chosen)} mutants killed in {time.monotonic() - started:.0f}s")
    for mutation, (outcome, _, last) in zip(chosen, results, strict=True):
        if not outcome.startswith("killed"):
            print(f"  {outcome}: {mutation.name} ({mutation.bug}); {', '.join(mutation.tests)}: {last}")
    if any(outcome.startswith("error") for outcome, _, _ in results):
        return 2
    return 0 if killed == len(chosen) else 1


def run_all(chosen: list[Mutation], copies: list[Path]) -> list[tuple[str, float, str]]:
    """Each copy runs one mutant at a time; the results come back in the list's order."""
    free = list(copies)
    results: dict[int, tuple[str, float, str]] = {}

    def work(index: int) -> None:
        copy = free.pop()
        try:
            results[index] = run_one(chosen[index], copy)
            print(f"{results[index][0]:16} {chosen[index].name} ({results[index][1]:.1f}s)", flush=True)
        finally:
            free.append(copy)

    with ThreadPoolExecutor(len(copies)) as pool:
        list(pool.map(work, range(len(chosen))))
    return [results[i] for i in range(len(chosen))]


if __name__ == "__main__":
    sys.exit(main())
