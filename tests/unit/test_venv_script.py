"""scripts/venv.sh (what `make demo` and `make test` run first) says what it does before each
slow step, so a first run on a fresh clone is never silent."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A stand-in interpreter: `-m venv` makes .venv/bin/python (itself), `-m pip install -r` takes a
# moment; each step says on stderr that it runs, so the order of the lines shows what came first.
FAKE_PYTHON = """#!/usr/bin/env bash
case "$*" in
  "--version") echo "Python 3.0-fake" ;;
  "-m venv .venv") echo "FAKE: venv" >&2; mkdir -p .venv/bin; cp "$0" .venv/bin/python ;;
  *"install --quiet -r requirements-dev.txt"*) echo "FAKE: pip" >&2; sleep 3 ;;
esac
"""


def _checkout(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "venv.sh", tmp_path / "scripts" / "venv.sh")
    for name in ("requirements.txt", "requirements-ops.txt", "requirements-dev.txt"):
        (tmp_path / name).write_text(f"# {name}\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return tmp_path / "scripts" / "venv.sh", fake


def test_each_slow_step_is_announced_before_it_runs(tmp_path: Path) -> None:
    """Piped: creating, then installing (saying the first time takes a minute or two), each
    line before the step itself; a second run with unchanged requirements says nothing."""
    script, fake = _checkout(tmp_path)
    first = subprocess.run(
        ["bash", str(script)],
        env={"PYTHON": str(fake), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = first.stderr.splitlines()
    assert lines[0] == "venv: creating .venv with Python 3.0-fake"
    assert lines[1] == "FAKE: venv"
    assert lines[2].startswith("venv: installing requirements-dev.txt")
    assert "the first time takes a minute or two" in lines[2]
    assert lines[3] == "FAKE: pip"
    assert lines[4].startswith("venv: installed in ")
    again = subprocess.run(
        ["bash", str(script)],
        env={"PYTHON": str(fake), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert again.stderr == ""


def test_on_a_terminal_the_install_counts_its_seconds(tmp_path: Path) -> None:
    """On a terminal (`script`), the install shows one line counting seconds, rewritten in place."""
    script, fake = _checkout(tmp_path)
    shown = subprocess.run(
        ["script", "-qefc", f"bash {script}", "/dev/null"],
        env={"PYTHON": str(fake), "PATH": "/usr/bin:/bin", "TERM": "xterm"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "\x1b[Kvenv: installing... 0 s" in shown
    assert "venv: installed in " in shown
