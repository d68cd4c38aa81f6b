"""Cold start: `import main` in a fresh interpreter, against `import functions_framework` alone
and an empty interpreter, median of N runs each (interleaved, after one warm-up run each so that
bytecode caches exist, as in a deployed image).

Two figures per case: the import itself (timed inside the child with perf_counter) and the
whole process (start to exit, timed by the parent). The heaviest imports of `main` come from
one `-X importtime` run.

    .venv/bin/python -m bench.bench_coldstart [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = (
    ("empty", "(empty interpreter)", ""),
    ("framework", "`import functions_framework`", "functions_framework"),
    ("main", "`import main`", "main"),
)
# The child writes its figure to a file: `import main` routes stdout/stderr through the logger.
_CHILD = """
import sys, time
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(repr(elapsed))
"""


def _child_env() -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "COV_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _once(module: str, out: Path) -> tuple[float, float]:
    body = f"import {module}" if module else "pass"
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _CHILD.format(body=body), str(out)],
        cwd=ROOT,
        env=_child_env(),
        check=True,
        capture_output=True,
    )
    process_s = time.perf_counter() - started
    return float(out.read_text()), process_s


def heaviest_imports(module: str = "main", top: int = 8) -> list[tuple[str, float]]:
    """The direct imports of `module` taking longest (cumulative), from one `-X importtime` run.

    importtime prints post-order ("| main" after everything it imported), two spaces of
    indent per level: the children of `module` are the depth-1 lines just before it.
    """
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=_child_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    children: list[tuple[str, float]] = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()[1:]  # drop the space after "|"
        depth = (len(name) - len(name.lstrip(" "))) // 2
        seconds = int(parts[1]) / 1e6
        if depth == 0:
            if name == module:
                return [
                    ("(all of main)", seconds),
                    *sorted(children, key=lambda c: c[1], reverse=True)[:top],
                ]
            children = []
        elif depth == 1:
            children.append((name.strip(), seconds))
    return []


def run(runs: int = 15) -> dict[str, Any]:
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "elapsed"
        for _, _, module in CASES:  # warm-up: bytecode caches, page cache
            _once(module, out)
        for _ in range(runs):
            for name, _, module in CASES:
                samples[name].append(_once(module, out))
    figures: dict[str, Any] = {"runs": runs, "cases": {}}
    for name, _, _ in CASES:
        figures["cases"][name] = {
            "import_ms": statistics.median(s[0] for s in samples[name]) * 1000,
            "process_ms": statistics.median(s[1] for s in samples[name]) * 1000,
        }
    cases = figures["cases"]
    figures["main_over_framework_ms"] = cases["main"]["import_ms"] - cases["framework"]["import_ms"]
    figures["heaviest"] = heaviest_imports()
    return figures


def markdown(figures: dict[str, Any]) -> str:
    rows = ["| Fresh interpreter | import (ms) | whole process (ms) |", "|---|---:|---:|"]
    for name, label, _ in CASES:
        case = figures["cases"][name]
        rows.append(f"| {label} | {case['import_ms']:.0f} | {case['process_ms']:.0f} |")
    rows += [
        "",
        f"Median of {figures['runs']} runs each. `import main` costs "
        f"**{figures['main_over_framework_ms']:.0f} ms** more than functions-framework alone.",
        "",
        "Heaviest imports under `import main` (one `-X importtime` run, cumulative): "
        + ", ".join(f"`{name}` {seconds * 1000:.0f} ms" for name, seconds in figures["heaviest"])
        + ".",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args(argv)
    sys.stdout.write(markdown(run(args.runs)) + "\n")


if __name__ == "__main__":
    main()
