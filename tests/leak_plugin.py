"""Leak scan over the whole test session: no seeded PII and no test secret in any output.

Everything the suite's code under test writes is scanned:

* the captured stdout, stderr and log sections of every test phase (``report.sections``);
* every line of every function process (``certexpiry_ops.harness.FunctionProcess``), both
  streams, including processes killed mid-run;
* every ``tests.logcapture.CapturedLog`` (the in-memory JSON loggers of the tests);
* anything a test hands to ``register_lines`` (e.g. a load test's streaming sink).

Needles: the PII the seeding helpers write (names, national ids, e-mail addresses, see
``SEEDED_PII`` and ``register_pii``), every secret value used by the tests (``register_secret``,
and module-level ``*KEY*``/``*SECRET*``/``*PASSWORD*``/``*TOKEN*`` string constants of the
collected test modules), and patterns for the same kinds of data (national-id digit runs,
e-mail addresses at the example domains, JWTs, Supabase secret keys, passwords in URLs).

At the end of the session any hit fails it (exit status 1) with a report that names the test,
the source and the kind of data, never the value itself. A test whose purpose is to produce
raw PII or secrets (e.g. a test of the scanner) is marked ``leak_scan_exempt``.

Registered in ``tests/conftest.py`` with ``pytest_plugins = ["tests.leak_plugin"]``.

Under pytest-xdist (``make test`` runs two workers) each worker scans what its own tests write,
with the needles its own collection harvested; the controller only adds up what each worker
reports when it goes down (``workeroutput``) and fails the session on any hit.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

import pytest

SEEDED_PII: tuple[str, ...] = ("Kari Nordmann", "01017012345", "kari@example.org", "Ola Testesen")
"""The personal data tests/seeding.py and the end-to-end tests put in the database."""

PATTERNS: dict[str, re.Pattern[str]] = {
    # Not part of a longer id, a decimal number or a timestamp (the sanitiser's own guards).
    "national id (11 digits)": re.compile(
        r"(?<![0-9A-Za-z_.:+-])[0-9]{6}[ ]?[0-9]{5}(?![0-9A-Za-z_])(?!\.[0-9])"
    ),
    "e-mail address at an example domain": re.compile(
        r"[A-Za-z0-9._%+-]+@example\.(?:org|com|net|no)\b"
    ),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+"),
    "Supabase secret key": re.compile(r"sb_secret_[A-Za-z0-9_-]{8,}"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@\"']+:[^\s/@\"']+@"),
}

_SECRET_NAME = re.compile(r"(?:KEY|SECRET|PASSWORD|PASSWD|TOKEN|JWT)", re.IGNORECASE)
_MIN_VALUE = 6
_EXCERPT = 160


@dataclass(frozen=True)
class Hit:
    """One needle found in one line."""

    source: str
    line_number: int
    kind: str
    excerpt: str


@dataclass
class LeakScanner:
    """Literal needles (PII and secret values) plus patterns, applied line by line."""

    pii: list[str] = field(default_factory=lambda: list(SEEDED_PII))
    secrets: list[str] = field(default_factory=list)
    patterns: dict[str, re.Pattern[str]] = field(default_factory=lambda: dict(PATTERNS))
    hits: list[Hit] = field(default_factory=list)
    lines_scanned: int = 0
    sources: set[str] = field(default_factory=set)
    _literal: re.Pattern[str] | None = None
    _kinds: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register_pii(self, values: Iterable[str]) -> None:
        self._add(self.pii, values)

    def register_secret(self, values: Iterable[str]) -> None:
        self._add(self.secrets, values)

    def _add(self, bucket: list[str], values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                value = value.strip()
                if len(value) >= _MIN_VALUE and value not in bucket:
                    bucket.append(value)
                    self._literal = None

    def _needles(self) -> re.Pattern[str] | None:
        """One regex for every literal needle, shaped as a trie (thousands of needles cost a
        few microseconds a line; a flat alternation or a `find` per needle costs ~100x)."""
        if self._literal is None:
            kinds: dict[str, str] = {}
            for number, value in enumerate(self.pii, 1):
                kinds.setdefault(value, f"seeded PII value #{number}")
            for number, value in enumerate(self.secrets, 1):
                kinds.setdefault(value, f"test secret value #{number}")
            if not kinds:
                return None
            self._kinds = kinds
            self._literal = re.compile(_trie_pattern(kinds))
        return self._literal

    def scan_line(self, line: str, source: str, line_number: int = 0) -> list[Hit]:
        """Hits in one line (recorded on this scanner, and returned)."""
        with self._lock:
            literal = self._needles()
            found: list[tuple[int, int, str]] = []
            if literal is not None:
                found += [
                    (m.start(), m.end(), self._kinds[m.group(0)]) for m in literal.finditer(line)
                ]
            for kind, pattern in self.patterns.items():
                found += [(m.start(), m.end(), kind) for m in pattern.finditer(line)]
            self.lines_scanned += 1
            self.sources.add(source)
            hits = [
                Hit(source, line_number, kind, self._excerpt(line, start, end, kind))
                for start, end, kind in found
            ]
            self.hits += hits
            return hits

    def scan_text(self, text: str, source: str) -> list[Hit]:
        """Hits in every line of `text`."""
        hits: list[Hit] = []
        for number, line in enumerate(text.splitlines(), 1):
            if line:
                hits += self.scan_line(line, source, number)
        return hits

    def _excerpt(self, line: str, start: int, end: int, kind: str) -> str:
        """The line around the hit with the hit (and any other needle) masked."""
        left = max(0, start - _EXCERPT // 2)
        text = line[left:start] + f"<{kind}>" + line[end : end + _EXCERPT // 2]
        literal = self._literal
        if literal is not None:
            text = literal.sub("<masked>", text)
        for pattern in self.patterns.values():
            text = pattern.sub("<masked>", text)
        return text


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of `words`, longest first, as a character trie."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


SCANNER = LeakScanner()
"""The session's scanner; tests add needles and lines through the functions below."""


def register_pii(values: Iterable[str]) -> None:
    """Add seeded personal data to look for (names, ids, e-mails a test wrote)."""
    SCANNER.register_pii(values)


def register_secret(*values: str) -> None:
    """Add secret values a test uses (keys, passwords, URLs with passwords)."""
    SCANNER.register_secret(values)


def register_lines(lines: Iterable[str], source: str) -> None:
    """Scan lines a test collected itself (unless the running test is exempt)."""
    if _state.exempt:
        return
    for number, line in enumerate(lines, 1):
        SCANNER.scan_line(line, source, number)


# --------------------------------------------------------------------------- session state


@dataclass
class _Watch:
    """Lines of one source not scanned yet: `read()` returns the whole text so far."""

    read: Callable[[], str | list[tuple[str, str]]]
    source: str
    offset: int = 0
    done: Callable[[], bool] = lambda: True

    def flush(self) -> None:
        try:
            content = self.read()
        except Exception:  # noqa: BLE001  # a closed stream has nothing more to give
            return
        lines = content.splitlines() if isinstance(content, str) else [text for _, text in content]
        fresh = lines[self.offset :]
        # A StringIO line still being written (no newline yet) is rescanned next time.
        if isinstance(content, str) and fresh and not content.endswith("\n"):
            fresh = fresh[:-1]
        for number, line in enumerate(fresh, self.offset + 1):
            if line:
                SCANNER.scan_line(line, self.source, number)
        self.offset += len(fresh)


@dataclass
class _State:
    nodeid: str = "<session>"
    exempt: bool = False
    exempt_ids: set[str] = field(default_factory=set)
    watches: dict[int, _Watch] = field(default_factory=dict)
    patched: bool = False
    original_start: Any = None
    observer_installed: bool = False
    distributing: bool = False  # the xdist controller: its workers scan, it adds up
    worker_secrets: int = 0  # the most secret values one worker scanned for


_state = _State()


def _flush_all(*, final: bool = False) -> None:
    """Scan what every watched source wrote since the last flush; forget finished sources.

    CapturedLogs are forgotten at the end of their test; function processes once they exited
    (a process a fixture keeps across tests stays watched).
    """
    for key, watch in list(_state.watches.items()):
        watch.flush()
        if final or watch.done():
            _state.watches.pop(key, None)


def _watch_captured_log(log: Any) -> None:
    """Observer for tests.logcapture.CapturedLog: its stream is scanned at the test's teardown.

    The stream is held until then even if the CapturedLog is dropped earlier: a test may keep
    only `log.logger`, which goes on writing into the same stream.
    """
    if _state.exempt:
        return
    SCANNER.register_secret(getattr(log, "secrets", ()))
    watch = _Watch(read=log.stream.getvalue, source=f"{_state.nodeid} [CapturedLog]")
    _state.watches[id(watch)] = watch


def _install_observer() -> None:
    if _state.observer_installed:
        return
    from tests import logcapture

    logcapture.observe(_watch_captured_log)
    _state.observer_installed = True


def _patch_function_process() -> None:
    """Register every FunctionProcess started from now on (lines of both streams)."""
    if _state.patched:
        return
    import sys

    harness: ModuleType | None = sys.modules.get("certexpiry_ops.harness")
    if harness is None:
        return  # patched as soon as a test module imports the harness
    cls = harness.FunctionProcess
    original = cls.start

    def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not _state.exempt:
            _register_env_secrets(self.env)
            process = self

            def finished() -> bool:
                child = getattr(process, "_process", None)
                readers = getattr(process, "_readers", [])
                return (
                    child is not None
                    and child.poll() is not None
                    and not any(reader.is_alive() for reader in readers)
                )

            watch = _Watch(
                read=lambda: list(process.lines),
                source=f"{_state.nodeid} [function process]",
                done=finished,
            )
            _state.watches[id(watch)] = watch
        return original(self, *args, **kwargs)

    cls.start = start
    _state.original_start = (cls, original)
    _state.patched = True


def _register_env_secrets(env: Any) -> None:
    """The secrets a function process is given: the service-role key, the DB password."""
    key = env.get("SUPABASE_SERVICE_ROLE_KEY")
    if key:
        SCANNER.register_secret([key])
    url = env.get("DATABASE_URL")
    if url:
        from psycopg.conninfo import conninfo_to_dict

        try:
            password = conninfo_to_dict(url).get("password")
        except Exception:  # noqa: BLE001  # a deliberately broken URL has no password to find
            password = None
        if password:
            SCANNER.register_secret([str(password)])


def _harvest_module_secrets(module: ModuleType) -> None:
    for name, value in vars(module).items():
        if (
            isinstance(value, str)
            and _SECRET_NAME.search(name)
            and len(value) >= 8
            and not value.startswith("[REDACTED:")  # a marker (SECRET_MARK), not a secret
        ):
            SCANNER.register_secret([value])


# --------------------------------------------------------------------------- hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "leak_scan_exempt(reason): this test writes raw PII or secrets on purpose; "
        "the session leak scan skips its output",
    )
    _install_observer()
    _patch_function_process()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _state.original_start is not None:
        cls, original = _state.original_start
        cls.start = original
        _state.original_start = None
        _state.patched = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    seen: set[str] = set()
    for item in items:
        module = getattr(item, "module", None)
        if isinstance(module, ModuleType) and module.__name__ not in seen:
            seen.add(module.__name__)
            _harvest_module_secrets(module)
        if item.get_closest_marker("leak_scan_exempt") is not None:
            _state.exempt_ids.add(item.nodeid)


def pytest_runtest_setup(item: pytest.Item) -> None:
    _patch_function_process()
    _state.nodeid = item.nodeid
    _state.exempt = item.nodeid in _state.exempt_ids


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _state.distributing:  # a worker's report, already scanned by the worker
        return
    exempt = report.nodeid in _state.exempt_ids
    if not exempt:
        for title, content in report.sections:
            SCANNER.scan_text(content, f"{report.nodeid} [{title}]")
    if report.when == "teardown":
        if not exempt:
            _flush_all()
        else:
            _state.watches.clear()
        _state.nodeid = "<between tests>"
        _state.exempt = False


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _state.distributing = session.config.pluginmanager.has_plugin("dsession")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _flush_all(final=True)
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the totals to the controller
        workeroutput["leak_scan"] = {
            "hits": [asdict(hit) for hit in SCANNER.hits],
            "lines_scanned": SCANNER.lines_scanned,
            "sources": sorted(SCANNER.sources),
            "pii": list(SCANNER.pii),
            "secrets_count": len(SCANNER.secrets),
        }
    if SCANNER.hits and session.exitstatus == 0:
        session.exitstatus = 1


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """The xdist controller adds up one worker's scan (hits fail the session above)."""
    scan = getattr(node, "workeroutput", {}).get("leak_scan")
    if scan is None:
        return
    SCANNER.hits += [Hit(**hit) for hit in scan["hits"]]
    SCANNER.lines_scanned += scan["lines_scanned"]
    SCANNER.sources.update(scan["sources"])
    SCANNER.register_pii(scan["pii"])
    # Secret values never cross to the controller, only how many the worker had.
    _state.worker_secrets = max(_state.worker_secrets, scan["secrets_count"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    hits = SCANNER.hits
    summary = (
        f"leak scan: {SCANNER.lines_scanned} lines from {len(SCANNER.sources)} sources, "
        f"{len(SCANNER.pii)} PII values, "
        f"{max(len(SCANNER.secrets), _state.worker_secrets)} secret values, "
        f"{len(SCANNER.patterns)} patterns: {len(hits)} hits"
    )
    if not hits:
        terminalreporter.write_line(summary)
        if terminalreporter.config.getoption("verbose") > 1:
            for source in sorted(SCANNER.sources):
                terminalreporter.write_line(f"  scanned: {source}")
        return
    terminalreporter.section("leak scan FAILED", sep="=", red=True, bold=True)
    terminalreporter.write_line(summary)
    for hit in hits[:50]:
        terminalreporter.write_line(f"- {hit.source} line {hit.line_number}: {hit.kind}")
        terminalreporter.write_line(f"    {hit.excerpt}")
    if len(hits) > 50:
        terminalreporter.write_line(f"... and {len(hits) - 50} more")
