"""The allow-list (certexpiry.redact): each context key's form, what it keeps and what it withholds;
a failed call's body by its structure; the project's vocabulary."""

from __future__ import annotations

import enum
import json
import logging
import threading
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

import certexpiry.messages
import certexpiry.settings
import certexpiry.store.contract
from certexpiry.redact import (
    CONTEXT_FORMS,
    WITHHELD,
    WORDS,
    BodyShape,
    CatalogName,
    allowed,
    body_shape,
    is_sqlstate,
)

UUID_TEXT = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
OTHER_UUID = uuid.UUID("6f1c2f4e-8d3a-4b6e-9c1d-2a3b4c5d6e7f")
PLANTED = "Kari Nordmann"
NAMES = ["kari", "Kari", "KARI", "kari nordmann", "NORDMANN, Kari", "Åse", "Łukasz Żółkiewski"]


class Colour(enum.IntEnum):
    RED = 1


class Setting(enum.Enum):
    BATCH = "BATCH_SIZE"
    OTHER = "kari"


class PlantedError(Exception):
    """An exception class defined here: its name is one the process has."""


class _Hostile:
    """A value whose comparison and text fail (a form must not need either to withhold it)."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("compared")

    __hash__ = object.__hash__

    def __str__(self) -> str:
        raise AssertionError("printed")


NUMBER_KEYS = [
    "attempt",
    "batch_size",
    "batches",
    "budget_s",
    "certifications",
    "certifications_paused",
    "delivery_attempt",
    "duration_ms",
    "elapsed_ms",
    "estimate_ms",
    "failures",
    "http_status",
    "lines_dropped",
    "mentors",
    "mentors_paused",
    "missed_pause_count",
    "notices_queued",
    "outbox_claimed",
    "outbox_dropped",
    "outbox_failed",
    "outbox_oldest_age_s",
    "outbox_undelivered",
    "peak_rss_kb",
    "position",
    "remaining_ms",
    "reminders_queued",
    "reminders_superseded",
    "segment",
    "segments",
    "total_count",
]
"""Counts, sizes and durations: numbers, never their text."""

# (key, value, what the line gets). Every key of CONTEXT_FORMS appears with at least one value
# kept and one withheld (test_every_key_has_a_kept_and_a_withheld_example).
KEPT: list[tuple[str, object, object]] = [
    *[(key, 3, 3) for key in NUMBER_KEYS],
    ("duration_ms", 12.5, 12.5),
    ("position", Colour.RED, 1),
    ("certification_id", UUID_TEXT, UUID_TEXT),
    ("peer_mentor_id", OTHER_UUID, str(OTHER_UUID)),
    ("run_id", UUID_TEXT.upper(), UUID_TEXT.upper()),
    ("message_id", "2070443601311540", "2070443601311540"),
    ("message_id", "9" * 32, "9" * 32),
    ("published_message_id", UUID_TEXT, UUID_TEXT),
    ("event_id", "17", "17"),
    ("execution_id", OTHER_UUID, str(OTHER_UUID)),
    ("execution_id", "12345", "12345"),
    ("dry_run", True, True),
    ("truncated", False, False),
    ("nightly_key", date(2026, 11, 28), "2026-11-28"),
    ("today", datetime(2026, 11, 28, 23, 59, tzinfo=UTC), "2026-11-28"),
    ("today", "2026-02-28", "2026-02-28"),
    ("setting", "BATCH_SIZE", "BATCH_SIZE"),
    ("setting", Setting.BATCH, "BATCH_SIZE"),
    ("event_type", certexpiry.messages.PUBSUB_EVENT_TYPE, certexpiry.messages.PUBSUB_EVENT_TYPE),
    ("constraint_name", CatalogName("certifications_pkey"), "certifications_pkey"),
    ("table_name", CatalogName("certifications"), "certifications"),
    ("schema_name", CatalogName("public"), "public"),
    ("column_name", CatalogName("expires_on"), "expires_on"),
    ("datatype_name", CatalogName("date"), "date"),
    ("routine", CatalogName("certexpiry.process_expiry_batch"), "certexpiry.process_expiry_batch"),
    ("reason", "own words, even Kari", "own words, even Kari"),
    ("remediation", "run the remediation", "run the remediation"),
    ("hint", "see the runbook", "see the runbook"),
    ("details", "the project's own text", "the project's own text"),
    ("details", [date(2026, 1, 1), "2026-01-02"], ["2026-01-01", "2026-01-02"]),
    ("details", ("2026-01-01", "kari"), ["2026-01-01", WITHHELD]),
    (
        "topic",
        "projects/my-project-1/topics/certexpiry-continue",
        "projects/my-project-1/topics/certexpiry-continue",
    ),
    ("subscription", "projects/abcdef/subscriptions/sub.1", "projects/abcdef/subscriptions/sub.1"),
    ("sqlstate", "23505", "23505"),
    ("sqlstate", "P0001", "P0001"),
    ("postgrest_code", "PGRST116", "PGRST116"),
    ("postgrest_code", "42501", "42501"),
    ("missed_ids", [UUID_TEXT, OTHER_UUID], [UUID_TEXT, str(OTHER_UUID)]),
    ("missed_ids", {UUID_TEXT}, [UUID_TEXT]),
    ("cursor", f"2026-11-28/{UUID_TEXT}", f"2026-11-28/{UUID_TEXT}"),
    ("cursor", f"-infinity/{UUID_TEXT}", f"-infinity/{UUID_TEXT}"),
    ("timezone", "Europe/Oslo", "Europe/Oslo"),
    ("error_type", "ValueError", "ValueError"),
    ("error_type", "PlantedError", "PlantedError"),
    ("logger", "stdout", "stdout"),
    ("logger", "stderr", "stderr"),
    ("logger", "root", "root"),
    ("thread", threading.current_thread().name, threading.current_thread().name),
    (
        "response_body",
        BodyShape(length=2, content_type="application/json"),
        {"length": 2, "content_type": "application/json"},
    ),
]
WITHHELD_VALUES: list[tuple[str, object]] = [
    *[(key, "3") for key in NUMBER_KEYS],
    *[("attempt", value) for value in (True, Decimal("1.5"), float("nan"), float("inf"))],
    ("batches", [1, 2]),
    ("certification_id", "not-a-uuid"),
    ("peer_mentor_id", "{" + UUID_TEXT + "}"),
    ("run_id", 7),
    ("message_id", "m-42"),
    ("message_id", "9" * 33),
    ("message_id", 2070443601311540),
    ("message_id", "Kari Nordmann 01019012345"),
    ("published_message_id", ""),
    ("event_id", "kari"),
    ("execution_id", "exec-42"),
    ("dry_run", 1),
    ("truncated", "true"),
    ("nightly_key", "2026-02-30"),
    ("nightly_key", "28.11.2026"),
    ("today", "2026-11-28T00:00:00"),
    ("today", 20261128),
    ("operation", "kari"),
    ("status", "Kari Nordmann"),
    ("outcome", 1),
    ("setting", Setting.OTHER),
    ("event_type", "kari"),
    ("constraint_name", "certifications_pkey"),
    ("schema_name", "public"),
    ("table_name", "kari"),
    ("column_name", "kari"),
    ("datatype_name", "text"),
    ("routine", "certexpiry.process_expiry_batch"),
    ("reason", 42),
    ("remediation", ["step"]),
    ("hint", b"bytes"),
    ("details", 42),
    ("topic", "projects/x/topics/t"),
    ("topic", "kari"),
    ("subscription", "projects/my-project-1/subscriptions/Kari Nordmann"),
    ("sqlstate", "2350"),
    ("sqlstate", "kari5"),
    ("sqlstate", "PGRST116"),
    ("sqlstate", 23505),
    ("postgrest_code", "PGRST1"),
    ("postgrest_code", "kari"),
    ("missed_ids", UUID_TEXT),
    ("cursor", f"kari/{UUID_TEXT}"),
    ("cursor", 5),
    ("timezone", "Kari/Nordmann"),
    ("timezone", 1),
    ("error_type", "Kari"),
    ("error_type", PlantedError),
    ("logger", "kari"),
    ("logger", 5),
    ("thread", "kari"),
    ("thread", 1),
    ("response_body", {"length": 2}),
    ("response_body", '{"message": "Kari"}'),
]


@pytest.mark.parametrize(("key", "value", "logged"), KEPT)
def test_a_value_that_shows_its_form_is_kept(key: str, value: object, logged: object) -> None:
    """Each form keeps what shows it cannot be personal data, as JSON can carry it."""
    result = allowed(key, value)
    assert result == logged
    assert json.dumps(result) == json.dumps(logged)  # an enum, a UUID, a set: as JSON has them


@pytest.mark.parametrize(("key", "value"), WITHHELD_VALUES)
def test_a_value_that_does_not_show_its_form_is_withheld(key: str, value: object) -> None:
    """Anything that does not show its key's form becomes WITHHELD, whole."""
    assert allowed(key, value) == WITHHELD


def test_every_key_has_a_kept_and_a_withheld_example() -> None:
    """A key added to the allow-list needs its form shown here (both ways), or this fails."""
    kept = {key for key, _, _ in KEPT}
    withheld = {key for key, _ in WITHHELD_VALUES}
    for key in ("operation", "status", "outcome"):  # kept words: test_real_words_are_kept
        kept.add(key)
    assert set(CONTEXT_FORMS) - kept == set()
    assert set(CONTEXT_FORMS) - withheld == set()


@pytest.mark.parametrize("key", sorted(CONTEXT_FORMS))
def test_no_name_passes_a_form_that_is_not_own_text(key: str) -> None:
    """A name in any case or script is withheld under every key, except the project's own text
    (reason, remediation, hint, details: built by its code from literals)."""
    own_text = key in ("reason", "remediation", "hint", "details")
    for name in NAMES:
        assert (allowed(key, name) == name) is own_text, name
        assert WITHHELD in json.dumps(allowed(key, [name, name])) or own_text


def test_none_stays_none_and_unknown_keys_raise() -> None:
    """None is logged as null under any key; a key outside the allow-list is a KeyError."""
    assert {allowed(key, None) for key in CONTEXT_FORMS} == {None}
    with pytest.raises(KeyError):
        allowed("email", "kari@example.org")


def test_a_hostile_value_is_withheld_without_being_read() -> None:
    """Forms check types before anything else: a value that cannot be compared or printed is
    withheld under a form that checks its type first."""
    for key in ("attempt", "run_id", "message_id", "today", "operation", "timezone", "thread"):
        assert allowed(key, _Hostile()) == WITHHELD, key


@pytest.mark.parametrize("key", sorted(CONTEXT_FORMS))
def test_an_unhashable_value_is_withheld_not_an_error(key: str) -> None:
    """A list, a dict or a set where a name or a word is expected is withheld like any other
    value that does not show its form (an error would cost the whole line)."""
    assert allowed(key, {PLANTED: 1}) == WITHHELD
    for value in ({PLANTED}, [PLANTED], [[PLANTED]]):
        assert PLANTED not in json.dumps(allowed(key, value)), value


def test_a_thread_that_ended_is_no_longer_a_thread_name() -> None:
    """thread: only the names of threads alive now."""
    seen: list[object] = []
    worker = threading.Thread(target=lambda: seen.append(allowed("thread", "worker-x")))
    worker.name = "worker-x"
    worker.start()
    worker.join()
    assert seen == ["worker-x"]
    assert allowed("thread", "worker-x") == WITHHELD


def test_a_logger_is_known_once_created() -> None:
    """logger: names the logging module has (the process's code created them)."""
    name = "certexpiry.test_redact.later"
    assert allowed("logger", name) == WITHHELD
    logging.getLogger(name)
    assert allowed("logger", name) == name


def test_an_exception_class_made_later_is_found() -> None:
    """error_type: the classes are walked afresh, so a class defined after the first look counts."""
    assert allowed("error_type", "MadeLaterError") == WITHHELD
    made = type("MadeLaterError", (LookupError,), {})
    assert allowed("error_type", "MadeLaterError") == "MadeLaterError"
    assert made.__name__ == "MadeLaterError"


def test_real_words_are_kept() -> None:
    """The words the project's modules define at import are logged as they are: the settings'
    names, the contract's RPC names and answer literals."""
    for name in certexpiry.settings.Settings.model_fields:
        assert allowed("setting", name.upper()) == name.upper()
    assert allowed("setting", "SETTINGS") == "SETTINGS"
    for rpc in certexpiry.store.contract.RPC_SIGNATURES:
        assert allowed("operation", rpc) == rpc
    assert allowed("operation", "auto_pause") == "auto_pause"  # a failure's operation
    assert allowed("status", "monitoring_failed") == "monitoring_failed"  # an audit row's
    assert allowed("outcome", "resumed") == "resumed"  # a claim's
    assert allowed("outcome", "kari") == WITHHELD


def test_words_hold_only_what_the_project_added() -> None:
    """WORDS holds the project's constants (added at import), never a word read at run time."""
    assert {"auto_pause", "SETTINGS"} <= WORDS
    assert "kari" not in WORDS
    assert all(isinstance(word, str) for word in WORDS)


@pytest.mark.parametrize(
    ("value", "result"),
    [
        (UUID_TEXT, True),
        (UUID_TEXT.upper(), True),
        (OTHER_UUID, True),
        (UUID_TEXT[:-1], False),
        (f" {UUID_TEXT}", False),
        (5, False),
    ],
)
def test_the_uuid_form(value: object, result: bool) -> None:
    """A UUID object or its canonical text, nothing around it."""
    assert (allowed("run_id", value) != WITHHELD) is result


@pytest.mark.parametrize(
    ("value", "result"),
    [("23505", True), ("XX000", True), ("PGRST116", False), ("2350", False), ("p0001", False)],
)
def test_is_sqlstate(value: object, result: bool) -> None:
    """Five digits or capitals: Postgres's SQLSTATE form."""
    assert is_sqlstate(value) is result


# ------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("body", "content_type", "shape"),
    [
        (
            json.dumps(
                {
                    "code": "23505",
                    "message": f"duplicate key for {PLANTED}",
                    "details": f"Key (name)=({PLANTED}) already exists.",
                    "hint": None,
                    PLANTED: 1,
                }
            ),
            "application/json; charset=utf-8",
            {
                "content_type": "application/json",
                "keys": ["code", "details", "hint", "message"],
                "other_keys": 1,
                "code": "23505",
            },
        ),
        (
            json.dumps({"code": "PGRST116", "message": PLANTED}),
            "application/vnd.pgrst.object+json",
            {
                "content_type": "application/vnd.pgrst.object+json",
                "keys": ["code", "message"],
                "other_keys": 0,
                "code": "PGRST116",
            },
        ),
        (
            json.dumps({"code": PLANTED, "msg": PLANTED}),
            "application/x-kari-nordmann",
            {"content_type": "other", "keys": ["code", "msg"], "other_keys": 0},
        ),
        (json.dumps({"code": 23505}), None, {"keys": ["code"], "other_keys": 0}),
        (json.dumps([PLANTED]), "text/plain", {"content_type": "text/plain"}),
        (f"<h1>{PLANTED}</h1>", "TEXT/HTML", {"content_type": "text/html"}),
        (f"Hello {PLANTED}", "", {}),
        ("[" * 100_000, "application/json", {"content_type": "application/json"}),
    ],
)
def test_a_body_is_logged_by_its_structure(
    body: str, content_type: str | None, shape: dict[str, object]
) -> None:
    """Content type (known ones), length, a JSON object's known keys, a count of the others and
    a code-shaped code: never a value of the body's text, nor a key outside the known ones."""
    found = body_shape(body, content_type)
    assert isinstance(found, BodyShape)
    assert found == {"length": len(body), **shape}
    logged = json.dumps(allowed("response_body", found))
    assert PLANTED not in logged
    assert "Kari" not in logged


@pytest.mark.parametrize("code", ["KARIN", "OLAXX", "ZZ999"])
def test_a_sqlstate_shaped_code_postgres_does_not_define_is_withheld(code: str) -> None:
    """Five capitals have a SQLSTATE's shape, and a trigger may raise any of them
    (``RAISE ... USING ERRCODE = 'KARIN'``): only codes Postgres defines are kept, as a sqlstate,
    a PostgREST code or a body's code."""
    assert allowed("sqlstate", code) == WITHHELD
    assert allowed("postgrest_code", code) == WITHHELD
    body = json.dumps({"code": code})
    shape = allowed("response_body", body_shape(body))
    assert shape == {"length": len(body), "keys": ["code"], "other_keys": 0, "code": WITHHELD}
    assert allowed("sqlstate", "57014") == "57014"
    assert allowed("postgrest_code", "P0001") == "P0001"
