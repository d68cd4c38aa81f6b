"""The session leak scan (tests/leak_plugin.py) catches what it must: planted PII and secrets in
a line, and a whole pytest session that leaks fails with a report that does not repeat the
value. The suite's own output is scanned by the plugin at the end of every session."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from certexpiry.codes import Code
from certexpiry.log import JsonLogger
from certexpiry.redact import Secrets
from tests.leak_plugin import PATTERNS, SEEDED_PII, LeakScanner

ROOT = Path(__file__).resolve().parents[2]
SECRET = "svc-role-secret-value-for-the-scanner-test"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLW5vdC1yZWFs"
PLANTED = {
    "a seeded name": "details: mentor Kari Nordmann could not be paused",
    "a seeded national id": '{"details":"Key (national_id)=(01017012345) already exists"}',
    "a seeded e-mail": "notify kari@example.org",
    "the e2e name": "row (Ola Testesen 3, active)",
    "a registered secret": f"connecting with {SECRET}",
    "a national id written with a space": "fnr 010170 12345 on file",
    "another example e-mail": "reply-to: someone.else+tag@example.no",
    "a JWT": f"Authorization: Bearer {JWT}",
    "a Supabase secret key": "apikey=sb_secret_abcdefghijklmnop123456",
    "a password in a URL": "postgresql://svc:hunter2pass@db.example.internal:5432/postgres",
}


@pytest.mark.leak_scan_exempt("plants PII and secrets to prove the scanner finds them")
@pytest.mark.parametrize("what", sorted(PLANTED))
def test_scanner_finds_a_planted_leak(what: str) -> None:
    """Each kind of planted PII or secret is found, and the report never repeats the value."""
    scanner = LeakScanner()
    scanner.register_secret([SECRET])
    hits = scanner.scan_line(PLANTED[what], "synthetic")
    assert hits, what
    for hit in hits:  # the report names the kind, never the value
        for value in (*SEEDED_PII, SECRET, JWT, "hunter2pass", "someone.else"):
            assert value not in hit.excerpt


def test_scanner_passes_clean_log_lines() -> None:
    """Ids, timestamps, SQLSTATEs, counts and durations are not mistaken for PII."""
    scanner = LeakScanner()
    stream = io.StringIO()
    log = JsonLogger(secrets=Secrets(), stream=stream, project="p").bind(
        run_id="5f0c6a3e-8d1b-4c53-9a44-0e6b2d8f1a77"
    )
    log.info(
        Code.BATCH_DONE,
        "Batch processed.",
        segment=12,
        duration_ms=1234567,
        mentors=50,
        reminders_queued=17,
    )
    log.error(
        Code.DB_OPERATION_FAILED,
        "A certification could not be processed.",
        sqlstate="40001",
        certification_id="00000000-0000-4000-8000-0000000004d2",
        details="could not serialize",
    )
    log.info(
        Code.CONTINUATION_PUBLISHED,
        "Continuation published.",
        published_message_id="17245896312345678",
        elapsed_ms=20000000001,
    )
    assert scanner.scan_text(stream.getvalue(), "clean") == []


@pytest.mark.leak_scan_exempt("feeds PII and secrets through the logger on purpose")
def test_the_allow_list_leaves_nothing_of_the_planted_data() -> None:
    """Planted data given as any checked context value or as an exception's message: nothing
    of it reaches a line (names included: they pass no form), and the secret is scrubbed even
    from a message, where only the project's own words belong."""
    secrets = Secrets()
    secrets.register(SECRET)
    stream = io.StringIO()
    log = JsonLogger(secrets=secrets, stream=stream)
    checked = ("operation", "constraint_name", "certification_id", "cursor", "error_type")
    for text in PLANTED.values():
        try:
            raise ValueError(text)
        except ValueError as exc:
            log.error(
                Code.DB_OPERATION_FAILED,
                f"A certification could not be processed ({SECRET}).",
                exc=exc,
                missed_ids=[text],
                **dict.fromkeys(checked, text),
            )
    scanner = LeakScanner()
    scanner.register_secret([SECRET])
    assert scanner.scan_text(stream.getvalue(), "allowed") == []
    assert stream.getvalue().count('"[withheld]"') == len(PLANTED) * (len(checked) + 1)


@pytest.mark.long
@pytest.mark.leak_scan_exempt("runs an inner session that leaks on purpose")
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "two xdist workers"])
def test_a_leaking_session_fails(tmp_path: Path, workers: list[str]) -> None:
    """An inner pytest session whose tests print PII or a secret fails with a report naming the
    test, never the value; a clean session passes. Under xdist (as `make test` runs) the workers
    scan and the controller adds up their hits."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(
        "import sys\n"
        "def test_clean():\n"
        "    print('nothing to see')\n"
        "def test_leaks_to_stdout():\n"
        "    print('paused mentor Kari Nordmann')\n"
        "def test_leaks_to_stderr():\n"
        "    print('token sb_secret_abcdefghijklmnop123456', file=sys.stderr)\n"
    )
    (tmp_path / "test_clean_only.py").write_text("def test_clean():\n    print('all good')\n")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tests.leak_plugin",
        "-p",
        "no:cacheprovider",
        "-c",
        str(tmp_path / "pytest.ini"),
        "--rootdir",
        str(tmp_path),
        # Its own base directory: a session on the default one resets /tmp/pytest-of-USER to
        # 0700 when it starts, which under xdist races the embedded Postgres (run as its own
        # user) that another worker's test is starting below it.
        "--basetemp",
        str(tmp_path / "inner"),
        *workers,
    ]
    leaking = subprocess.run(
        [*command, str(tmp_path / "test_inner.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    clean = subprocess.run(
        [*command, str(tmp_path / "test_clean_only.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert leaking.returncode == 1, leaking.stdout[-2000:]
    assert "3 passed" in leaking.stdout
    assert "leak scan FAILED" in leaking.stdout
    assert "test_leaks_to_stdout [Captured stdout call]" in leaking.stdout
    assert "test_leaks_to_stderr [Captured stderr call]" in leaking.stdout
    assert "Kari Nordmann" not in leaking.stdout
    assert "sb_secret_abcdefghijklmnop" not in leaking.stdout
    assert clean.returncode == 0, clean.stdout[-2000:]
    assert "0 hits" in clean.stdout


def test_patterns_cover_the_kinds_of_data_seeded() -> None:
    """The scanner has a pattern for every kind of sensitive value the suites seed."""
    assert set(PATTERNS) >= {
        "national id (11 digits)",
        "e-mail address at an example domain",
        "JWT",
        "Supabase secret key",
        "password in a URL",
    }
