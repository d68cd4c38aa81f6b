"""What the attack suites (tests/e2e/test_attack.py, tests/e2e/test_attack_forms.py) share: the
planted values, the noise a function process is made to write, the scanner that looks for
them in every line, a Supabase stand-in answering with error bodies, and the CLI driver.

Two kinds of planted values:

* `PLANTED`/`FORBIDDEN` (issue 11): a name, national ids, e-mails, phones and secrets, looked
  for as case-insensitive substrings.
* `PEOPLE` (issue 22): names in every case and form a deny-list misses (lower, upper,
  casefolded, the first name alone, the surname alone, "SURNAME, First"), with diacritics,
  other scripts, an apostrophe and names of two and three letters. They are looked for word by
  word (`NEEDLES`), case-insensitively (casefolded) on word boundaries, in every string of a
  JSON line once decoded (so "\\u00c5sa" is "Åsa"; a string holding JSON is decoded too) or in
  the whole of any other line, NFKC-normalised, with Python's \\u and \\x escapes decoded and
  SQL's and Python's quote escapes undone. None of these words is a word of the project's own
  text (`test_the_needles_are_no_word_of_the_project` checks it), so a hit is a leak.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from certexpiry_ops.cli import main as cli_main
from certexpiry_ops.console import CliIO
from certexpiry_ops.harness import FunctionProcess
from tests.leak_plugin import register_lines

Conn = psycopg.Connection[Any]
ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ issue 11's planted values

NAME = "Ragnhild Plantedottir"
OTHER = "Ola Fremmedsen"
NATIONAL_ID = "01019012345"
EMAIL = "ragnhild@example.no"
PASSWORD = "Hunter2Secret"
AT_PASSWORD_URL = "postgresql://postgres:Secret1x@Pa55wd@127.0.0.1:1/postgres"
NON_URL_SECRET = "hunter2xyzzy"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLWF0dGFjaw"
SB_KEY = "sb_secret_attackattack1234567"
PLANTED = [
    NAME,
    OTHER,
    NATIONAL_ID,
    "fnrA01019012345",
    "01019012345b",
    "id 01019012345.5",
    "010190 12345",
    "d-nr 41019012345",
    EMAIL,
    '"ragnhild.p"@example.no',
    "ragnhild/p@example.no",
    "ragnhild@øl.no",
    "ragnhild%40example.no",
    "+47 912 34 567",
    "+4791234567",
    "91234567",
    "912 34 567",
    "912-34-567",
    "9123 4567",
    f"the DB password is {PASSWORD}",
    JWT,
    SB_KEY,
    f"Authorization: Bearer {JWT}",
]
PLANT = " | ".join(PLANTED)
# Supabase's body: everything but the database password, which that deployment does not have
# (a password is recognised by value only where it is configured).
BODY_PLANT = " | ".join(value for value in PLANTED if PASSWORD not in value)
# What must not be found in any line, whatever surrounds it (case-insensitive).
FORBIDDEN = [
    "ragnhild",
    "plantedottir",
    "fremmedsen",
    "01019012345",
    "010190 12345",
    "41019012345",
    "91234567",
    "912 34 567",
    "912-34-567",
    "9123 4567",
    "+47 912",
    PASSWORD.lower(),
    "secret1x",
    "pa55wd",
    NON_URL_SECRET,
    "eyjyb2xlijoic2vydmljzv9yb2xlin0",
    "c2lnbmf0dxjllwf0dgfjaw",
    "attackattack",
]
# A line the noise writes that must keep its useful parts: a byte count, a duration, a date.
USEFUL = "read 2048 bytes in 1500 ms on 30112026"

# ------------------------------------------------------------------ issue 22's planted names


@dataclass(frozen=True)
class Person:
    """A planted mentor's name: `forms()` is every way the attack writes it."""

    first: str
    last: str

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"

    def forms(self) -> dict[str, str]:
        return {
            "exact": self.full,
            "lower case": self.full.lower(),
            "upper case": self.full.upper(),
            "casefolded": self.full.casefold(),
            "first name alone": self.first,
            "surname alone": self.last,
            "SURNAME, First": f"{self.last.upper()}, {self.first}",
        }

    def plant(self) -> str:
        """Every form, one text."""
        return " | ".join(self.forms().values())

    def words(self) -> list[str]:
        """What must be found nowhere, as words (casefolded): each part of the name, and the
        part after an apostrophe ("O'Dwyer" and "Dwyer")."""
        found: list[str] = []
        for part in self.full.split():
            found.append(part)
            found += [piece for piece in re.split("['\\u2019-]", part) if len(piece) > 1]
        return sorted({word.casefold() for word in found})


FAILING = Person("Ingebjørg", "Kvernmoen")  # the mentor whose rows fail
BYSTANDER = Person("Gunnvor", "Lysebotn")  # another mentor, not failing, quoted by the errors
PEOPLE = [
    FAILING,
    Person("Åsa", "Østgård"),  # a three-letter first name, diacritics
    Person("Grażyna", "Łęczycka"),
    Person("Siobhán", "O'Dwyer"),  # an apostrophe (SQL writes it '')
    Person("Светлана", "Коржакова"),
    Person("Ξανθίππη", "Ζαχαρίας"),  # a final sigma: its casefold is not its lower case
    Person("Bo", "Ækerlund"),  # a two-letter first name
    Person("Jürgen", "Weißhaupt"),  # ß: upper case and casefold write it "ss"
]
EVERYONE = [*PEOPLE, BYSTANDER]
NAMES_PLANT = " | ".join(person.plant() for person in EVERYONE)
NEEDLES: dict[str, str] = {
    word: person.full for person in EVERYONE for word in person.words()
}  # word -> whose
_NEEDLE_RE = re.compile(
    r"(?<!\w)("
    + "|".join(re.escape(word) for word in sorted(NEEDLES, key=len, reverse=True))
    + r")(?!\w)"
)


def _unescape(text: str) -> str:
    """The text as a reader sees it: JSON's and Python's \\u and \\x escapes decoded (UTF-8
    bytes too), SQL's doubled quote and Python's escaped quotes undone, NFKC-normalised (a
    name written decomposed is the same name)."""
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    text = re.sub(
        r"(?:\\x[0-9a-fA-F]{2})+",
        lambda m: bytes.fromhex(m.group(0).replace("\\x", "")).decode("utf-8", "replace"),
        text,
    )
    text = text.replace("''", "'").replace("\\'", "'").replace('\\"', '"')
    return unicodedata.normalize("NFKC", text)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, text) of every string of a decoded JSON value, keys included; a string that is
    JSON itself is decoded too."""
    if isinstance(value, str):
        yield path, value
        if value[:1] in "{[":
            try:
                inner = json.loads(value)
            except ValueError:
                return
            yield from _strings(inner, path + "<json>")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}<key>", str(key)
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


@dataclass(frozen=True)
class Leak:
    """A planted value found: which, whose, where (source, line number, the line's error_code,
    the JSON path of the string), and the text around it."""

    needle: str
    whose: str
    source: str
    line: int
    code: str
    field: str
    excerpt: str


def _excerpt(text: str, start: int, end: int) -> str:
    return text[max(0, start - 50) : end + 50].replace("\n", "\\n")


def find_leaks(lines: list[tuple[str, str]], *, forbidden: bool = True) -> list[Leak]:
    """Every planted value in (source, line) pairs: the names of `EVERYONE` as words in any
    case, and (`forbidden`) the values of `FORBIDDEN` as substrings. A JSON line is read
    string by string (decoded), any other line as it is."""
    leaks: list[Leak] = []
    for number, (source, line) in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            code = str(entry.get("error_code"))
            texts = list(_strings(entry, "$"))
        else:
            code, texts = "not JSON", [("<line>", line)]
        for field, text in texts:
            readable = _unescape(text)
            folded = readable.casefold()
            shown = readable if len(readable) == len(folded) else folded
            for match in _NEEDLE_RE.finditer(folded):
                word = match.group(1)
                excerpt = _excerpt(shown, match.start(), match.end())
                leaks.append(Leak(word, NEEDLES[word], source, number, code, field, excerpt))
            for value in FORBIDDEN if forbidden else ():
                at = folded.find(value.casefold())
                if at >= 0:
                    excerpt = _excerpt(shown, at, at + len(value))
                    leaks.append(Leak(value, "FORBIDDEN", source, number, code, field, excerpt))
    return leaks


def describe(leaks: list[Leak]) -> str:
    """The leaks grouped by line and field: which words, and the text around the first."""
    groups: dict[tuple[str, int, str, str], list[Leak]] = {}
    for leak in leaks:
        groups.setdefault((leak.source, leak.line, leak.code, leak.field), []).append(leak)
    out = [f"{len(leaks)} planted values in {len(groups)} fields:"]
    for (source, line, code, field), found in list(groups.items())[:40]:
        words = sorted({leak.needle for leak in found})
        out.append(
            f"- {source} line {line} [{code}] {field}: {', '.join(words)}\n"
            f"    ...{found[0].excerpt}..."
        )
    if len(groups) > 40:
        out.append(f"... and {len(groups) - 40} more fields")
    return "\n".join(out)


def assert_no_leak(lines: list[tuple[str, str]]) -> None:
    """No planted value in any line (the failure lists them by line and field)."""
    leaks = find_leaks(lines)
    assert not leaks, describe(leaks)


def assert_all_json(lines: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every line (stdout and stderr) is one JSON object; returns them."""
    entries: list[dict[str, Any]] = []
    bad: list[str] = []
    for stream, line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            bad.append(f"{stream}: {line[:160]!r}")
            continue
        entries.append(entry)
    assert not bad, f"{len(bad)} of {len(lines)} lines are not JSON objects:\n" + "\n".join(
        bad[:30]
    )
    return entries


# ------------------------------------------------------------------ noise in the function process

SITECUSTOMIZE = '''
"""Loaded by the function process (PYTHONPATH): noise with planted values at every batch."""
import logging, os, sys, threading, traceback, warnings
from certexpiry.store import postgres as pg_store

PLANT = os.environ["ATTACK_PLANT"]
_call = pg_store.PgTransport.call


def _boom():
    raise RuntimeError("thread: " + PLANT)


def call(self, operation, params):
    if operation == "process_expiry_batch":
        print("print: " + PLANT)
        print(os.environ["ATTACK_USEFUL"])
        logging.getLogger("psycopg").warning("library: %s", PLANT)
        logging.getLogger("httpx").error("library error: " + PLANT)
        warnings.warn("warning: " + PLANT, UserWarning)
        sys.stderr.write("stderr: " + PLANT + "\\n")
        thread = threading.Thread(target=_boom, name="attack")
        thread.start()
        thread.join()
        try:
            raise ValueError("printed: " + PLANT)
        except ValueError:
            traceback.print_exc()
    if operation == "claim_continuation":
        raise ValueError("the DB password is " + os.environ["ATTACK_PASSWORD"] + ": " + PLANT)
    return _call(self, operation, params)


pg_store.PgTransport.call = call
'''


@pytest.fixture
def noise(tmp_path: Path) -> dict[str, str]:
    """The environment that makes the function process load the noise."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "ATTACK_PLANT": PLANT,
        "ATTACK_USEFUL": USEFUL,
        "ATTACK_PASSWORD": PASSWORD,
    }


# Issue 22's noise, by kind (ATTACK_NOISE, comma-separated), at the first batch of the night:
#   python: print, library and root loggers, warnings, stderr, SyntaxErrors holding the names
#           in their source line and in their message, printed, logged and raised in
#           threads, and a KeyError raised in a thread;
#   fd:     os.write to fds 1 and 2 (a line split inside a UTF-8 character across two
#           writes), sys.__stdout__ and sys.__stderr__;
#   exit:   a daemon thread writing to fd 2 and sys.__stderr__ from the first batch on, and
#           another started by atexit, both still writing while the interpreter exits.
FORMS_SITECUSTOMIZE = '''
"""Loaded by the function process (PYTHONPATH): issue 22's noise, with planted names."""
import atexit, logging, os, sys, threading, time, traceback, warnings
from certexpiry.store import postgres as pg_store

PLANT = os.environ["ATTACK_PLANT"]
KINDS = set(os.environ.get("ATTACK_NOISE", "").split(","))
MARKS = os.environ["ATTACK_MARKS"]
_call = pg_store.PgTransport.call
_done = []


_marks = os.open(MARKS, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
_write = os.write  # still there while the interpreter tears its modules down


def _mark(text):
    """What the noise did, for the test (a file: the streams are what is under test)."""
    try:
        _write(_marks, (text + "\\n").encode())
    except Exception:
        pass


def _syntax_errors():
    """SyntaxErrors holding the names: in the source line the traceback prints (the whole
    plant as code) and in the message ("duplicate argument '<a name>' ...")."""
    words = {}
    for word in sorted(PLANT.replace(",", " ").split()):
        if word.isidentifier():
            words.setdefault(word.casefold(), word)  # one spelling of each name
    found = []
    for source in [PLANT] + [f"def planted({word}, {word}): pass" for word in words.values()]:
        try:
            compile(source, "<planted>", "exec")
        except SyntaxError as exc:
            found.append(exc)
    return found


def _raise(exc):
    raise exc


def _python():
    print("print: " + PLANT)
    logging.getLogger("psycopg").warning("library: %s", PLANT)
    logging.getLogger("grpc").error("library error: " + PLANT)
    logging.getLogger().critical("root: " + PLANT)
    warnings.warn("warning: " + PLANT, UserWarning)
    sys.stderr.write("stderr: " + PLANT + "\\n")
    errors = _syntax_errors()
    for exc in errors:
        traceback.print_exception(exc)
    logging.getLogger("psycopg").error("a syntax error", exc_info=errors[0])
    logging.getLogger("grpc").error("a syntax error", exc_info=errors[1])
    for exc in (errors[0], errors[1], KeyError(PLANT)):
        thread = threading.Thread(target=_raise, args=(exc,), name="attack")
        thread.start()
        thread.join()
    _mark(f"python {len(errors)} syntax errors")


def _fd():
    os.write(1, ("fd 1: " + PLANT + "\\n").encode())
    os.write(2, ("fd 2: " + PLANT + "\\n").encode())
    data = ("fd 2, split: " + PLANT + "\\n").encode()
    cut = data.index("ø".encode()) + 1  # inside the two bytes of one character
    os.write(2, data[:cut])
    time.sleep(0.05)
    os.write(2, data[cut:])
    sys.__stdout__.write("__stdout__: " + PLANT + "\\n")
    sys.__stdout__.flush()
    sys.__stderr__.write("__stderr__: " + PLANT + "\\n")
    sys.__stderr__.flush()
    _mark("fd")


def _keep_writing(name, wrote=None):
    count = 0
    while True:
        count += 1
        for kind, write in (
            ("fd 2", lambda: _write(2, f"{name} {count}: {PLANT}\\n".encode())),
            ("__stderr__", lambda: (sys.__stderr__.write(f"{name} {count} stream: {PLANT}\\n"),
                                    sys.__stderr__.flush())),
        ):
            try:
                write()
            except Exception:
                continue
            _mark(f"{name} {count} {kind}")
        if wrote is not None:
            wrote.set()
        time.sleep(0.02)


def _at_exit():
    """A writer started by atexit: the handler returns once it has written (else the exit
    can outrun its first write), and it goes on writing while the interpreter finalizes."""
    wrote = threading.Event()
    threading.Thread(target=_keep_writing, args=("at exit", wrote), daemon=True).start()
    wrote.wait(5)


def _exit():
    threading.Thread(target=_keep_writing, args=("daemon",), daemon=True).start()
    atexit.register(_at_exit)


def call(self, operation, params):
    if operation == "process_expiry_batch" and not _done:
        _done.append(True)
        if "python" in KINDS:
            _python()
        if "fd" in KINDS:
            _fd()
        if "exit" in KINDS:
            _exit()
    return _call(self, operation, params)


pg_store.PgTransport.call = call
'''


def forms_noise(tmp_path: Path, *kinds: str) -> dict[str, str]:
    """The environment that makes a function process load issue 22's noise of `kinds`; what
    it did is read back with `noise_marks(tmp_path)`."""
    folder = tmp_path / "forms_noise"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(FORMS_SITECUSTOMIZE, encoding="utf-8")
    return {
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]),
        "ATTACK_PLANT": NAMES_PLANT,
        "ATTACK_NOISE": ",".join(kinds),
        "ATTACK_MARKS": str(folder / "marks.txt"),
    }


def noise_marks(tmp_path: Path) -> list[str]:
    """What the noise of `forms_noise` did, one mark a line ("fd", "daemon 3", "at exit 1")."""
    marks = tmp_path / "forms_noise" / "marks.txt"
    return marks.read_text(encoding="utf-8").splitlines() if marks.exists() else []


def process_lines(function: FunctionProcess) -> list[tuple[str, str]]:
    """(stream, line) of a function process, every line of both streams."""
    return [(f"function {stream}", line) for stream, line in function.lines]


# ------------------------------------------------------------------ Supabase answering errors


class _SupabaseDown(BaseHTTPRequestHandler):
    """Supabase's HTTP API answering every RPC with an error body quoting the planted values
    (`server.body_plant`)."""

    def do_POST(self) -> None:  # http.server's name
        self.rfile.read(int(self.headers.get("content-length") or 0))
        plant = getattr(self.server, "body_plant", BODY_PLANT)
        body = json.dumps(
            {
                "code": "23505",
                "message": f'duplicate key value violates unique constraint "m_k" {plant}',
                "details": f"Key (email)=({EMAIL}) already exists. {plant}",
                "hint": f"Ask {NAME}: {plant}",
            }
        ).encode()
        self.send_response(409)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # http.server's name: PostgREST's table reads answer the same
        self.do_POST()

    def log_message(self, *_args: Any) -> None:
        """Silent: the test reads the function's lines, not the server's."""


def serve_supabase(body_plant: str) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SupabaseDown)
    server.body_plant = body_plant  # type: ignore[attr-defined]  # read by the handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def supabase() -> Iterator[str]:
    """Supabase's place, answering with issue 11's planted values."""
    yield from serve_supabase(BODY_PLANT)


@pytest.fixture
def supabase_names() -> Iterator[str]:
    """Supabase's place, answering with issue 22's planted names in every form."""
    yield from serve_supabase(f"{NAMES_PLANT} | {BODY_PLANT}")


# ------------------------------------------------------------------ the CLI


@dataclass
class CliRun:
    """One CLI command: its arguments, exit code and lines."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[tuple[str, str]]:
        name = " ".join(self.args)
        return [(f"cli {name} [stdout]", line) for line in self.out.splitlines()] + [
            (f"cli {name} [stderr]", line) for line in self.err.splitlines()
        ]

    def entries(self) -> list[dict[str, Any]]:
        """The JSON objects of stdout (a --json command's lines)."""
        found = []
        for line in self.out.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found


def run_cli(*args: str) -> CliRun:
    """The CLI in process with captured streams; its lines go to the session's leak scan."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli_main(list(args), cli_io=CliIO(stdout=stdout, stderr=stderr))
    run = CliRun(args, code, stdout.getvalue(), stderr.getvalue())
    register_lines([line for _, line in run.lines], f"cli {' '.join(args[:2])}")
    return run


def cli_lines(*args: str) -> list[str]:
    """issue 11's driver: the lines of both streams."""
    run = run_cli(*args)
    return run.out.splitlines() + run.err.splitlines()
