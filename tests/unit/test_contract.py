"""The typed SQL contract without a database: every RPC's answer through RpcStore or OpsStore,
from a hand-written transport. A renamed key or an unknown outcome is a ContractError that names
the RPC and the field, never the value."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping
from datetime import date, time
from typing import Any

import pytest

from certexpiry.codes import Code
from certexpiry.errors import ContractError, StoreError
from certexpiry.messages import PUBSUB_EVENT_TYPE
from certexpiry.store import COUNT_KEYS, AuditRow, Counts, Duplicate, Owned, RpcStore, call
from certexpiry.store import contract as store_contract
from certexpiry.sweep import Outcome, handle_event
from certexpiry.wiring import read_schema_version
from certexpiry_ops.contract import ALL_ANSWERS, OPS_ANSWERS, OPS_SIGNATURES, SIGNATURES
from certexpiry_ops.fakes import FakeStore
from certexpiry_ops.local import pubsub_event_data
from certexpiry_ops.ops import OpsStore
from tests.jobs import make_job
from tests.logcapture import CapturedLog

RUN, CERT, MENTOR = (str(uuid.uuid4()) for _ in range(3))
CURSOR = f"2026-11-30/{uuid.uuid4()}"  # the SQL's keyset token
AT = "2026-11-28T02:00:00.123456+01:00"
TOTALS = {key: 1 for key in COUNT_KEYS}
FAILURE = {
    "certification_id": CERT,
    "peer_mentor_id": MENTOR,
    "operation": "auto_pause",
    "sqlstate": "P0001",
}
ROW = {
    "run_id": RUN,
    "run_at": AT,
    "nightly_key": "2026-11-28",
    "status": "completed",
    "segments": 2,
    "missed_pause_count": 1,
    "resolved": False,
    "resolved_at": None,
    "duration_ms": 1234,
    "totals": TOTALS,
    "updated_at": AT,
}
PII = "Kari Nordmann 01017012345"

# One answer of each RPC, key for key as its SQL function builds it.
VALID: dict[str, Any] = {
    "claim_nightly_run": {
        "outcome": "started",
        "run_id": RUN,
        "segment": 0,
        "cursor": None,
        "today": "2026-11-28",
        "abandoned": [str(uuid.uuid4())],
        "totals": {},
        "started_at": AT,
        "missed_nights": ["2026-11-26", "2026-11-27"],
    },
    "claim_continuation": {
        "outcome": "duplicate",
        "run_id": RUN,
        "segment": 3,
        "status": "completed",
    },
    "process_expiry_batch": {
        **TOTALS,
        "fenced": False,
        "next_cursor": CURSOR,
        "done": True,
        "failures_detail": [FAILURE],
        "run_totals": TOTALS,
    },
    "handoff_run": {"fenced": False, "cursor": CURSOR, "segment": 1},
    "complete_run": {
        "fenced": False,
        "totals": TOTALS,
        "segments": 2,
        "started_at": AT,
        "finished_at": AT,
        "nightly_key": "2026-11-28",
    },
    "get_missed_auto_pauses": {
        "missed_pause_count": 1,
        "missed_ids": [CERT],
        "today": "2026-11-28",
    },
    "upsert_cron_audit": {"run_id": RUN, "missed_pause_count": 1, "resolved": False},
    "remediate_auto_pauses": {
        "certifications_paused": 1,
        "mentors_paused": 1,
        "notices_queued": 1,
        "reminders_queued": 0,
        "reminders_superseded": 0,
        "failures": 1,
        "failures_detail": [FAILURE],
    },
    "list_cron_audit": [ROW],
    "get_cron_audit": {**ROW, "missed_ids": [CERT], "still_missed": [CERT]},
    "resolve_cron_audit": {
        "found": True,
        "resolved": False,
        "refused": True,
        "forced": False,
        "still_missed": [CERT],
        "resolved_at": None,
    },
    "schema_version": {"latest": "20261130002003", "applied": 12},
    "plan_night": {
        "today": "2026-11-28",
        "reminder_days": [30, 7, 1],
        "run": {"run_id": RUN, "status": "completed", "segment": 2},
        "certifications": 3,
        "counts": {"reminders_queued": 1, "certifications_paused": 1, "failures": 1},
        "reminders": {"7": {"count": 1, "ids": [CERT]}},
        "superseded": {"30": {"count": 1, "ids": [CERT]}},
        "certifications_paused": {"count": 1, "ids": [CERT]},
        "mentors_paused": {"count": 1, "ids": [MENTOR]},
        "failures": {"count": 1, "ids": [CERT]},
    },
    "night_history": [
        {
            "night": "2026-11-28",
            "state": "unresolved",
            "run_id": RUN,
            "run_status": "completed",
            "audit_status": "completed",
            "segments": 2,
            "expected_at": AT,
            "started_at": AT,
            "finished_at": AT,
            "worked_ms": 1234,
            "wall_ms": 5678,
            "totals": TOTALS,
            "lease_left_s": None,
            "missed_pause_count": 1,
            "resolved": False,
            "acknowledged_at": None,
            "ack_code": None,
            "covered_by": None,
        }
    ],
    "acknowledge_missed_nights": [
        {
            "night": "2026-11-27",
            "outcome": "acknowledged",
            "acknowledged_at": AT,
            "code": "scheduler_paused",
        }
    ],
    "claim_outbox": {
        "messages": [
            {
                "id": 41,
                "kind": "reminder",
                "peer_mentor_id": MENTOR,
                "certification_id": CERT,
                "payload": {"offset_days": 7, "days_left": 6, "expiry_date": "2026-12-04"},
                "attempt": 1,
                "created_at": AT,
            }
        ],
        "dropped": 2,
        "exhausted": 0,
    },
    "acknowledge_outbox": {"acknowledged": 1, "already": 1, "unknown": 0},
    "fail_outbox": {"failed": 1, "already": 0, "unknown": 1},
    "outbox_backlog": {
        "undelivered": 3,
        "claimed": 1,
        "oldest_undelivered_at": AT,
        "oldest_age_s": 3600,
        "failed": 1,
        "dropped": 2,
    },
}

AUDIT = AuditRow(uuid.UUID(RUN), 0, [], "completed", None, 1, Counts(), 10)
# How the job calls each RPC.
CALLS: dict[str, Callable[[RpcStore, OpsStore], object]] = {
    "claim_nightly_run": lambda s, o: s.claim_nightly_run(uuid.UUID(RUN), "Europe/Oslo", 120),
    "claim_continuation": lambda s, o: s.claim_continuation(uuid.UUID(RUN), 3, 120),
    "process_expiry_batch": lambda s, o: s.process_batch(uuid.UUID(RUN), 0, None, 50, [7], 120),
    "handoff_run": lambda s, o: s.handoff(uuid.UUID(RUN), 0, 120),
    "complete_run": lambda s, o: s.complete(uuid.UUID(RUN), 1),
    "get_missed_auto_pauses": lambda s, o: s.missed_auto_pauses("Europe/Oslo", None, limit=1000),
    "upsert_cron_audit": lambda s, o: s.upsert_audit(AUDIT),
    "remediate_auto_pauses": lambda s, o: o.remediate(uuid.UUID(RUN), [CERT], "Europe/Oslo"),
    "list_cron_audit": lambda s, o: o.list_audit(5),
    "get_cron_audit": lambda s, o: o.get_audit(uuid.UUID(RUN)),
    "resolve_cron_audit": lambda s, o: o.resolve_audit(uuid.UUID(RUN)),
    "schema_version": lambda s, o: read_schema_version(s.transport),
    "plan_night": lambda s, o: o.plan("Europe/Oslo", None, [30, 7, 1], 10),
    "night_history": lambda s, o: o.nights(
        "Europe/Oslo", 7, schedule_time=time(1), schedule_zone="Etc/UTC", late_after_s=1800
    ),
    "acknowledge_missed_nights": lambda s, o: o.acknowledge_nights(
        [date(2026, 11, 27)], "Europe/Oslo", None
    ),
    "claim_outbox": lambda s, o: o.claim_outbox(100, 60),
    "acknowledge_outbox": lambda s, o: o.acknowledge_outbox([41, 42]),
    "fail_outbox": lambda s, o: o.fail_outbox([41], "no_contact_address"),
    "outbox_backlog": lambda s, o: s.outbox_backlog(),
}

# (RPC, path to a key, its new name): a renamed key, the motivating bug of `.get(k) or 0`.
RENAMES = [
    ("claim_nightly_run", ("run_id",), "runid"),
    ("claim_continuation", ("segment",), "segment_no"),
    ("process_expiry_batch", ("reminders_queued",), "reminders_sent"),
    ("process_expiry_batch", ("run_totals", "mentors"), "mentor_count"),
    ("process_expiry_batch", ("failures_detail", 0, "sqlstate"), "code"),
    ("handoff_run", ("fenced",), "is_fenced"),
    ("complete_run", ("totals",), "run_totals"),
    ("get_missed_auto_pauses", ("missed_ids",), "ids"),
    ("upsert_cron_audit", ("resolved",), "is_resolved"),
    ("remediate_auto_pauses", ("certifications_paused",), "paused"),
    ("list_cron_audit", (0, "missed_pause_count"), "missed"),
    ("get_cron_audit", ("still_missed",), "still"),
    ("resolve_cron_audit", ("refused",), "rejected"),
    ("schema_version", ("latest",), "version"),
    ("plan_night", ("mentors_paused", "ids"), "mentor_ids"),
    ("night_history", (0, "night"), "date"),
    ("night_history", (0, "worked_ms"), "duration_ms"),
    ("acknowledge_missed_nights", (0, "outcome"), "result"),
    ("claim_outbox", ("messages", 0, "certification_id"), "cert_id"),
    ("claim_outbox", ("dropped",), "stale"),
    ("acknowledge_outbox", ("already",), "duplicates"),
    ("fail_outbox", ("failed",), "failures"),
    ("outbox_backlog", ("oldest_age_s",), "oldest_age"),
]

# (RPC, path, a value outside its Literal, the field path the error names).
UNKNOWN = [
    ("claim_nightly_run", ("outcome",), "claimed", "outcome (union_tag_invalid)"),
    ("claim_continuation", ("outcome",), "resumed", "outcome (union_tag_invalid)"),
    ("claim_continuation", ("status",), "paused", "status (literal_error)"),
    (
        "process_expiry_batch",
        ("failures_detail", 0, "operation"),
        "delete",
        "failures_detail[0].operation (literal_error)",
    ),
    (
        "remediate_auto_pauses",
        ("failures_detail", 0, "operation"),
        "delete",
        "failures_detail[0].operation (literal_error)",
    ),
    ("list_cron_audit", (0, "status"), "exploded", "[0].status (literal_error)"),
    ("get_cron_audit", ("status",), "exploded", "status (literal_error)"),
    ("plan_night", ("run", "status"), "exploded", "run.status (literal_error)"),
    ("night_history", (0, "state"), "skipped", "[0].state (literal_error)"),
    ("acknowledge_missed_nights", (0, "outcome"), "deleted", "[0].outcome (literal_error)"),
    ("claim_outbox", ("messages", 0, "kind"), "sms", "messages[0].kind (literal_error)"),
]

# RPCs without an outcome or status: the closest thing, a flag that is not a boolean.
NOT_A_FLAG = [
    ("process_expiry_batch", ("fenced",), "fenced (union_tag_invalid)"),
    ("handoff_run", ("fenced",), "fenced (bool_type)"),
    ("complete_run", ("fenced",), "fenced (union_tag_invalid)"),
    ("get_missed_auto_pauses", ("missed_pause_count",), "missed_pause_count (int_type)"),
    ("upsert_cron_audit", ("resolved",), "resolved (bool_type)"),
    ("resolve_cron_audit", ("found",), "found (bool_type)"),
    ("schema_version", ("applied",), "applied (int_type)"),
    ("acknowledge_outbox", ("acknowledged",), "acknowledged (int_type)"),
    ("fail_outbox", ("unknown",), "unknown (int_type)"),
    ("outbox_backlog", ("undelivered",), "undelivered (int_type)"),
    ("claim_outbox", ("messages", 0, "payload"), "messages[0].payload (dict_type)"),
]


class CannedTransport:
    """Answers each RPC with a copy of a scripted JSON value and records the parameters."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, operation: str, params: Mapping[str, Any]) -> Any:
        self.calls.append((operation, dict(params)))
        return copy.deepcopy(self.answers[operation])

    def close(self) -> None:
        pass


def _call(rpc: str, answer: Any) -> CannedTransport:
    transport = CannedTransport({rpc: answer})
    CALLS[rpc](RpcStore(transport), OpsStore(transport))
    return transport


def _edited(rpc: str, path: tuple[int | str, ...], edit: Callable[[Any, Any], None]) -> Any:
    answer = copy.deepcopy(VALID[rpc])
    parent = answer
    for part in path[:-1]:
        parent = parent[part]
    edit(parent, path[-1])
    return answer


def _contract_error(rpc: str, answer: Any) -> ContractError:
    with pytest.raises(ContractError) as caught:
        _call(rpc, answer)
    error = caught.value
    assert error.operation == rpc
    assert str(error).startswith(f"{rpc} answered outside the SQL contract: ")
    return error


def test_every_rpc_has_a_signature_an_answer_and_a_case_here() -> None:
    """The contract lists each RPC once: signature, answer model, and these tests' cases."""
    assert set(SIGNATURES) == set(ALL_ANSWERS) == set(VALID) == set(CALLS)
    assert {rpc for rpc, _, _ in RENAMES} == set(SIGNATURES)
    assert {rpc for rpc, *_ in UNKNOWN} | {rpc for rpc, *_ in NOT_A_FLAG} == set(SIGNATURES)


def test_the_function_ships_only_its_own_rpcs() -> None:
    """The runtime's contract lists the RPCs the function calls; the toolkit's lists the rest,
    none twice, and each registry's answers are exactly its signatures (the function's are
    what certexpiry/store/ deploys; the ops-only answers stay in certexpiry_ops)."""
    assert set(store_contract.RPC_SIGNATURES) == set(store_contract.ANSWERS)
    assert set(OPS_SIGNATURES) == set(OPS_ANSWERS)
    assert not set(store_contract.RPC_SIGNATURES) & set(OPS_SIGNATURES)
    assert set(store_contract.RPC_SIGNATURES) == {
        "claim_nightly_run",
        "claim_continuation",
        "process_expiry_batch",
        "handoff_run",
        "complete_run",
        "get_missed_auto_pauses",
        "upsert_cron_audit",
        "schema_version",
        "outbox_backlog",
    }
    for answer in OPS_ANSWERS.values():
        assert answer.signature is OPS_SIGNATURES[answer.rpc]


def test_arguments_are_named_from_the_signature() -> None:
    """A store method passes keyword arguments: each becomes the signature's `p_` name with its
    JSON value; an argument the RPC lacks fails before anything is sent, and SQL_DEFAULT leaves
    one out so that its SQL default applies."""
    run = uuid.UUID(RUN)
    assert store_contract.UPSERT_CRON_AUDIT.arguments(
        {"run_id": run, "nightly_key": date(2026, 11, 28), "missed_ids": ("a",), "totals": {}}
    ) == {
        "p_run_id": RUN,
        "p_nightly_key": "2026-11-28",
        "p_missed_ids": ["a"],
        "p_totals": {},
    }
    batch = store_contract.PROCESS_EXPIRY_BATCH
    assert batch.arguments({"cursor": None, "failed_ahead": store_contract.SQL_DEFAULT}) == {
        "p_cursor": None
    }
    transport = CannedTransport(VALID)
    with pytest.raises(TypeError, match=r"handoff_run has no argument p_lease_s$"):
        call(transport, store_contract.HANDOFF_RUN, run_id=run, segment=0, lease_s=120)
    assert transport.calls == []
    RpcStore(transport).process_batch(run, 0, None, 50, [7], 120, failed_ahead=("23514",))
    RpcStore(transport).process_batch(run, 0, None, 50, [7], 120)
    (_, passing), (_, plain) = transport.calls
    assert passing["p_failed_ahead"] == ["23514"]
    assert "p_failed_ahead" not in plain


@pytest.mark.parametrize("rpc", sorted(VALID))
def test_each_valid_answer_parses_and_the_call_names_known_arguments(rpc: str) -> None:
    """The scripted answers are valid; the job names only arguments of the signature."""
    ((operation, params),) = _call(rpc, VALID[rpc]).calls
    assert operation == rpc
    assert set(params) <= set(SIGNATURES[rpc])


@pytest.mark.parametrize(("rpc", "path", "new"), RENAMES, ids=lambda v: str(v))
def test_a_renamed_key_is_a_contract_error(rpc: str, path: tuple[Any, ...], new: str) -> None:
    """A renamed key is reported where it is (extra) and, if required, where it is missing."""

    def rename(parent: Any, key: Any) -> None:
        parent[new] = parent.pop(key)

    error = _contract_error(rpc, _edited(rpc, path, rename))
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[:-1]).lstrip(".")
    prefix = f"{where}." if where else ""
    assert f"{prefix}{new} (extra_forbidden)" in error.fields
    if path[-1] not in COUNT_KEYS:  # a count may be absent (it is 0); any other key is due
        assert f"{prefix}{path[-1]} (missing)" in error.fields


@pytest.mark.parametrize(("rpc", "path", "value", "field"), UNKNOWN, ids=lambda v: str(v))
def test_an_unknown_outcome_or_status_is_a_contract_error(
    rpc: str, path: tuple[Any, ...], value: str, field: str
) -> None:
    """A value outside the Literal (e.g. claim_continuation's `claimed` answering the nightly
    claim, which the sweep once took for RUN_RESUMED) fails loudly, naming the field."""

    def replace(parent: Any, key: Any) -> None:
        parent[key] = value

    error = _contract_error(rpc, _edited(rpc, path, replace))
    assert field in error.fields
    assert value not in str(error)


@pytest.mark.parametrize(("rpc", "path", "field"), NOT_A_FLAG, ids=lambda v: str(v))
def test_a_mistyped_value_is_named_but_never_shown(
    rpc: str, path: tuple[Any, ...], field: str
) -> None:
    """Personal data in the wrong place is reported by field path only: not in the message, the
    log context, nor a chained exception (pydantic's own error quotes the input)."""

    def replace(parent: Any, key: Any) -> None:
        parent[key] = PII

    error = _contract_error(rpc, _edited(rpc, path, replace))
    assert field in error.fields
    shown = [str(error), repr(error), *map(str, error.log_context().values())]
    assert not any(part in text for text in shown for part in PII.split())
    assert error.__cause__ is None
    assert error.__context__ is None


def test_the_contract_error_is_a_permanent_store_error() -> None:
    """A contract violation is a StoreError the sweep acknowledges (a retry gets the same
    answer), catalogued as DB_OPERATION_FAILED with the RPC and the fields in its context."""
    error = _contract_error("handoff_run", {"fenced": False, "segment": 1})
    assert isinstance(error, StoreError)
    assert not error.transient
    assert error.code is Code.DB_OPERATION_FAILED
    assert error.log_context() == {
        "operation": "handoff_run",
        "details": "answer outside the SQL contract: cursor (missing)",
    }


def test_an_answer_that_is_not_an_object_is_a_contract_error() -> None:
    """null where an object is due names the whole answer."""
    assert _contract_error("get_missed_auto_pauses", None).fields == ("(answer) (model_type)",)


def test_counts_absent_keys_are_zero_but_nulls_and_negatives_are_errors() -> None:
    """Absent counts are 0, as certexpiry.sum_counts adds them; null, negative, fractional,
    boolean or textual counts are errors."""
    batch = dict(VALID["process_expiry_batch"])
    for key in ("reminders_queued", "reminders_superseded", "certifications_paused"):
        del batch[key]
    result = RpcStore(CannedTransport({"process_expiry_batch": batch})).process_batch(
        uuid.UUID(RUN), 0, None, 50, [7], 120
    )
    assert result.counts["reminders_queued"] == 0
    assert result.counts["mentors"] == 1
    for bad in (None, -1, 1.5, True, "3"):
        error = _contract_error("process_expiry_batch", {**batch, "mentors": bad})
        assert error.fields[0].startswith("mentors (")


def test_counts_are_one_read_only_mapping_of_every_key() -> None:
    """Counts is the Mapping the sweep, the console and the demo read counts through."""
    counts = Counts(mentors=2, batches=1)
    assert tuple(counts) == COUNT_KEYS
    assert len(counts) == len(COUNT_KEYS)
    assert dict(counts)["mentors"] == 2
    assert counts.get("failures") == 0
    assert "mentors" in counts
    assert "unknown" not in counts
    assert counts.get("unknown") is None
    with pytest.raises(KeyError):
        counts["unknown"]
    assert counts == Counts(mentors=2, batches=1)
    assert hash(counts) == hash(Counts(**counts))


def test_claims_keep_what_each_outcome_carries() -> None:
    """A started run carries its cursor, totals and abandoned runs; a duplicate only its ids."""
    started = _call("claim_nightly_run", VALID["claim_nightly_run"])
    claim = RpcStore(started).claim_nightly_run(uuid.UUID(RUN), "Europe/Oslo", 120)
    assert isinstance(claim, Owned)
    assert not claim.resumed
    assert claim.totals == Counts()
    assert [str(run) for run in claim.abandoned] == VALID["claim_nightly_run"]["abandoned"]
    assert [str(night) for night in claim.missed_nights] == ["2026-11-26", "2026-11-27"]
    duplicate = RpcStore(CannedTransport(VALID)).claim_continuation(uuid.UUID(RUN), 3, 120)
    assert duplicate == Duplicate(uuid.UUID(RUN), 3)  # its ids, nothing else


def test_fenced_answers_carry_no_counts() -> None:
    """A fenced batch or completion (every other key null) is read as fenced."""
    store = RpcStore(
        CannedTransport(
            {
                "process_expiry_batch": {"fenced": True, "segment": None, "status": None},
                "complete_run": {
                    "fenced": True,
                    "totals": None,
                    "segments": None,
                    "started_at": None,
                    "finished_at": None,
                    "nightly_key": None,
                },
            }
        )
    )
    batch = store.process_batch(uuid.UUID(RUN), 0, CURSOR, 50, [7], 120)
    assert batch.fenced
    assert batch.next_cursor == CURSOR
    assert not any(batch.counts.values())
    assert store.complete(uuid.UUID(RUN), 0).fenced
    with pytest.raises(ContractError, match=r"totals \(none_required\)"):
        RpcStore(
            CannedTransport(
                {"complete_run": {**VALID["complete_run"], "fenced": True, "segments": None}}
            )
        ).complete(uuid.UUID(RUN), 0)


NIGHTLY = pubsub_event_data(b'{"kind": "nightly"}', message_id="msg-1")


def test_the_sweep_stops_on_an_answer_outside_the_contract() -> None:
    """A nightly claim answered with another RPC's outcome is an ERROR and an ACK, never a
    RUN_RESUMED, and the offending value does not reach the log."""
    answer = {**VALID["claim_nightly_run"], "outcome": "claimed", "cursor": PII}
    log = CapturedLog()
    store = RpcStore(CannedTransport({"claim_nightly_run": answer}))
    assert handle_event(make_job(store, log), PUBSUB_EVENT_TYPE, NIGHTLY) is Outcome.ACK
    (entry,) = log.entries
    assert entry["error_code"] == "DB_OPERATION_FAILED"
    assert entry["severity"] == "ERROR"
    assert entry["context"]["operation"] == "claim_nightly_run"
    assert "outcome (union_tag_invalid)" in entry["context"]["details"]
    assert not any(part in line for line in log.raw_lines for part in PII.split())


def test_the_sweep_never_takes_another_outcome_for_resumed() -> None:
    """A claim outcome claim_nightly_run cannot answer never reaches the sweep as another one:
    the port has no value for it, and a store (the fake too) refuses it as outside the
    contract, so only `resumed` is ever logged as RUN_RESUMED."""
    log = CapturedLog()
    handle_event(make_job(FakeStore(claim_outcome="claimed"), log), PUBSUB_EVENT_TYPE, NIGHTLY)
    assert log.codes() == ["DB_OPERATION_FAILED"]
    assert log.entries[0]["context"]["details"].endswith("outcome (literal_error)")


def test_schema_version_is_the_newest_migration() -> None:
    """The version the runtime requires at cold start is the newest migration of this release
    that records itself in the job's ledger (an online index cannot); a merge that adds a
    migration without moving it (or a typo) fails here."""
    from certexpiry.store.contract import SCHEMA_VERSION
    from certexpiry_ops import schema

    assert schema.required_version() == SCHEMA_VERSION


def test_the_schema_check_turns_an_unreadable_answer_into_one_error_line() -> None:
    """An answer outside the contract at cold start is logged with its code and the function is
    not ready (503), rather than an exception escaping the entry point."""
    from certexpiry.errors import SchemaNotReady
    from certexpiry.wiring import check_schema

    log = CapturedLog()
    transport = CannedTransport({"schema_version": {"version": "1"}})
    with pytest.raises(SchemaNotReady):
        check_schema(transport, log.logger)
    (entry,) = log.entries
    assert entry["error_code"] == Code.DB_OPERATION_FAILED
    assert entry["context"]["operation"] == "schema_version"


def test_the_outbox_answers_keep_ids_kinds_and_counts() -> None:
    """claim_outbox's messages, the acknowledgement and failure counts and the backlog come
    back typed; the calls send exactly the sender's arguments (p_max_attempts: its default)."""
    transport = CannedTransport(VALID)
    ops, store = OpsStore(transport), RpcStore(transport)
    claim = ops.claim_outbox(100, 60)
    (message,) = claim.messages
    assert (message.id, message.kind, str(message.certification_id)) == (41, "reminder", CERT)
    assert sorted(message.payload) == ["days_left", "expiry_date", "offset_days"]
    assert (claim.dropped, claim.exhausted) == (2, 0)
    assert ops.acknowledge_outbox([41, 42]).acknowledged == 1
    assert ops.fail_outbox([41], "no_contact_address").unknown == 1
    backlog = store.outbox_backlog()
    assert (backlog.undelivered, backlog.oldest_age_s) == (3, 3600)
    assert transport.calls[:3] == [
        ("claim_outbox", {"p_limit": 100, "p_visibility_s": 60}),
        ("acknowledge_outbox", {"p_ids": [41, 42]}),
        ("fail_outbox", {"p_ids": [41], "p_code": "no_contact_address"}),
    ]
    assert transport.calls[3] == ("outbox_backlog", {})


def test_an_empty_outbox_is_nulls_for_the_oldest_and_no_messages() -> None:
    """Nothing waiting: the oldest's time and age are null; an empty claim is a valid batch.
    A message id of 0, a negative count or an attempt of 0 is outside the contract."""
    transport = CannedTransport(
        {
            "outbox_backlog": {
                **VALID["outbox_backlog"],
                "undelivered": 0,
                "claimed": 0,
                "oldest_undelivered_at": None,
                "oldest_age_s": None,
            },
            "claim_outbox": {"messages": [], "dropped": 0, "exhausted": 3},
        }
    )
    assert RpcStore(transport).outbox_backlog().oldest_age_s is None
    assert OpsStore(transport).claim_outbox(10, 30).messages == ()
    for key in ("id", "attempt"):
        answer = _edited("claim_outbox", ("messages", 0, key), lambda p, k: p.update({k: 0}))
        error = _contract_error("claim_outbox", answer)
        assert f"messages[0].{key} (greater_than_equal)" in error.fields
    negative = _edited("outbox_backlog", ("failed",), lambda p, k: p.update({k: -1}))
    assert "failed (greater_than_equal)" in _contract_error("outbox_backlog", negative).fields
