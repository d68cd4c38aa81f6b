"""The `certexpiry` command as an operator gets it (README, "Install"): the project with its `ops`
extra installed, editable, into a virtualenv of its own, and a shell that knows nothing else.

The documented form is `python3 -m venv T && T/bin/pip install -e "CHECKOUT[ops]"`. The tests
make the same install (same resolver, same pins, the same editable project) a little faster:
the virtualenv is made without its own pip, which the test's pip installs into by `--python`,
and nothing is byte-compiled (`--no-compile`): 12-18 s where the documented form takes 35-51 s,
pip's cache warm (README, "Measured"). CI's `make test` installs the same pins into .venv first,
so its cache is warm too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT_S = 600  # a cold pip cache downloads every wheel: a hang, not a slow run, fails


@contextlib.contextmanager
def private_dir(prefix: str) -> Iterator[Path]:
    """A directory of the test's own, removed afterwards. Not pytest's tmp_path: pytest keeps a
    user's last three numbered base directories and removes older ones when a session starts,
    so on a machine where the same user runs other sessions a long test's tool install or
    demo database can vanish under it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def install_tool(where: Path) -> Path:
    """Install the project with its `ops` extra into a new virtualenv at `where`; its bin/."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)],
        check=True,
        capture_output=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(where / "bin" / "python")),
            *("install", "--quiet", "--no-compile", "--disable-pip-version-check"),
            *("-e", f"{ROOT}[ops]"),
        ],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return where / "bin"


def clean_env(tool_bin: Path, home: Path, **variables: str) -> dict[str, str]:
    """A shell's environment with nothing of this one: PATH is the tool's bin/ and the system's,
    never the repository's .venv; HOME is `home`; `variables` on top."""
    path = f"{tool_bin}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin"
    assert str(ROOT / ".venv") not in path
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", **variables}


def in_clean_shell(
    line: str, env: Mapping[str, str], cwd: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """One pasted line, run by bash in `env` (nothing inherited) from `cwd`."""
    return subprocess.run(
        [
            "/usr/bin/env",
            "-i",
            *(f"{key}={value}" for key, value in env.items()),
            "bash",
            "-c",
            line,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
