"""Cost of one log line: bare ``json.dumps`` + write against JsonLogger, same run.

    .venv/bin/python bench/bench_logging.py [--lines 20000]

Cases, each timed line by line (median, timer overhead subtracted) into an
``io.StringIO`` and into ``os.devnull`` (a real write + flush syscall per line):

(a) baseline: ``stream.write(json.dumps(entry) + "\\n")`` + flush of a dict shaped like
    the logger's plain line;
(b) JsonLogger, a plain INFO line: short constant message, six small ints;
(c) JsonLogger, a realistic ERROR line of a failed call: a message, context with fresh
    UUIDs and a PostgREST response body holding a JWT, an email and the UUID, all different
    on every line, given by its structure (``body_shape``, timed with the line: the allow-list
    logs no body text); two secrets are registered, as in production.

The cases are interleaved in rounds so that machine noise hits them alike.  ``run()``
returns the figures for the report script; run as a script it prints a Markdown table.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from certexpiry.codes import Code
from certexpiry.log import JsonLogger
from certexpiry.redact import Secrets, body_shape

GOAL_US = 20.0
_ROUNDS = 10
_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwicm9sZSI6ImF1dGhlbnRp"
    "Y2F0ZWQifQ.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)
_BODY = (
    '{"code":"PGRST301","message":"JWT expired","details":"token '
    + _JWT
    + ' rejected for ola.nordmann@example.no on certification %s","hint":null}'
)
CASES = (
    ("baseline", "(a) `json.dumps` + write (baseline)"),
    ("plain", "(b) JsonLogger, plain line"),
    ("sanitised", "(c) JsonLogger, a failed call's ERROR line (ids, body by its structure)"),
)


def _timer_overhead_ns() -> float:
    """Median cost of the timing itself, subtracted from every sample."""
    clock = time.perf_counter_ns
    samples = []
    for _ in range(20_000):
        start = clock()
        samples.append(clock() - start)
    return statistics.median(samples)


def _cases(stream: TextIO, lines: int) -> dict[str, Callable[[int], None]]:
    """One callable per case, each writing line ``i`` to ``stream``."""
    secrets = Secrets()
    secrets.register(_JWT.replace("dozj", "serv"))  # the service-role key
    secrets.register("db-password-for-bench")
    log = JsonLogger(
        secrets=secrets, service="certexpiry", version="bench", project="bench", stream=stream
    ).bind(run_id=str(uuid.uuid4()))
    ids = [str(uuid.uuid4()) for _ in range(2 * lines + 2)]

    probe = io.StringIO()
    JsonLogger(secrets=secrets, stream=probe).bind(run_id=ids[0]).info(
        Code.BATCH_DONE, "Batch processed.", segment=3, duration_ms=812, mentors=40
    )
    entry = json.loads(probe.getvalue())  # the baseline serialises a dict of the same shape

    def baseline(i: int) -> None:
        entry["context"]["duration_ms"] = i
        stream.write(json.dumps(entry) + "\n")
        stream.flush()

    def plain(i: int) -> None:
        log.info(
            Code.BATCH_DONE,
            "Batch processed.",
            segment=3,
            duration_ms=i,
            mentors=40,
            reminders_queued=i % 7,
            certifications_paused=1,
            failures=0,
        )

    def sanitised(i: int) -> None:
        certification_id = ids[2 * i]
        log.error(
            Code.SUPABASE_RPC_FAILED,
            f"RPC pause_mentor failed for certification {certification_id}",
            certification_id=certification_id,
            peer_mentor_id=ids[2 * i + 1],
            operation="pause_mentor",
            http_status=401,
            postgrest_code="PGRST301",
            response_body=body_shape(_BODY % certification_id, "application/json"),
        )

    return {"baseline": baseline, "plain": plain, "sanitised": sanitised}


def _measure(stream: TextIO, lines: int, overhead_ns: float) -> dict[str, float]:
    """Median microseconds per line of each case writing to ``stream``."""
    cases = _cases(stream, lines)
    samples: dict[str, list[int]] = {name: [] for name in cases}
    per_round = max(1, lines // _ROUNDS)
    clock = time.perf_counter_ns
    done = 0
    while done < lines:
        count = min(per_round, lines - done)
        for name, case in cases.items():
            gc.collect()
            bucket = samples[name]
            for i in range(done, done + count):
                start = clock()
                case(i)
                bucket.append(clock() - start)
                if isinstance(stream, io.StringIO) and i % 1_000 == 0:
                    stream.seek(0)
                    stream.truncate()
        done += count
    return {
        name: max(0.0, (statistics.median(times) - overhead_ns) / 1_000)
        for name, times in samples.items()
    }


def run(lines: int = 20_000) -> dict[str, Any]:
    """Measure every case on both sinks; figures in microseconds per line and ratios.

    Returns ``{"lines", "python", "goal_us", "goal_met": {sink: bool}, "sinks": {sink:
    {case: {"us", "ratio"}}}}`` with sinks ``stringio`` and ``devnull`` and cases baseline /
    plain / sanitised; ``goal_met`` says whether the sanitised line stays under GOAL_US.
    """
    overhead_ns = _timer_overhead_ns()
    sinks: dict[str, dict[str, dict[str, float]]] = {}
    with open(os.devnull, "w", encoding="utf-8") as devnull:
        for sink, stream in (("stringio", io.StringIO()), ("devnull", devnull)):
            medians = _measure(stream, lines, overhead_ns)
            base = medians["baseline"] or 1e-9
            sinks[sink] = {
                name: {"us": round(value, 2), "ratio": round(value / base, 2)}
                for name, value in medians.items()
            }
    return {
        "lines": lines,
        "python": platform.python_version(),
        "goal_us": GOAL_US,
        "goal_met": {name: sink["sanitised"]["us"] < GOAL_US for name, sink in sinks.items()},
        "sinks": sinks,
    }


def markdown(figures: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    sinks = figures["sinks"]
    rows = [
        "| Case | StringIO µs/line | x baseline | /dev/null µs/line | x baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in CASES:
        string_io, devnull = sinks["stringio"][name], sinks["devnull"][name]
        rows.append(
            f"| {label} | {string_io['us']:.2f} | {string_io['ratio']:.2f} "
            f"| {devnull['us']:.2f} | {devnull['ratio']:.2f} |"
        )
    met = figures["goal_met"]
    verdict = ", ".join(
        f"{'met' if met[sink] else 'NOT met'} on {label}"
        for sink, label in (("stringio", "StringIO"), ("devnull", "/dev/null"))
    )
    rows.append("")
    rows.append(
        f"Median of {figures['lines']} lines per case, Python {figures['python']}; "
        f"goal for (c) under {figures['goal_us']:.0f} µs a line: {verdict}."
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=20_000, help="lines per case and sink")
    args = parser.parse_args(argv)
    sys.stdout.write(markdown(run(args.lines)) + "\n")


if __name__ == "__main__":
    main()
