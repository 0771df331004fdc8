""".ci/run's exit code is CI's verdict: its clean-up on exit must neither turn a pass into a
failure nor a failure into a pass."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

CI_RUN = Path(__file__).resolve().parents[2] / ".ci" / "run"


def exit_trap() -> str:
    (line,) = re.findall(r"^trap .* EXIT$", CI_RUN.read_text(), flags=re.MULTILINE)
    return line


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("(exit 0) & wait $!", 0),  # every background job already waited for: `kill` gets no pid
        ("sleep 30 & true", 0),  # one still running when the run ends
        ("(exit 0) & wait $!; false", 1),
        ("sleep 30 & exit 3", 3),
    ],
)
def test_the_exit_trap_keeps_the_runs_exit_code(tmp_path: Path, body: str, code: int):
    script = f"set -euo pipefail\nplain={tmp_path}/plain logs={tmp_path}/logs\n{exit_trap()}\n{body}\n"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == code, done.stderr
