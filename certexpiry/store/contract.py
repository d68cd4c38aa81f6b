"""The function's typed contract with the SQL API: each RPC it calls, with its signature and
its answer.

`RPC_SIGNATURES` lists the SQL API functions the function calls (supabase/schemas/), argument by
argument as `pg_proc` has them; the toolkit's own RPCs are certexpiry_ops.contract's, and
tests/integration/test_contract.py holds both lists against the database. `ANSWERS` says what
each RPC returns (certexpiry.store.answers). `Answer.arguments` names the arguments from the
signature, so no caller spells a `p_` name; `Answer.parse` turns an answer of any other shape
into a `ContractError` that names the RPC and the field paths, never the values (they may be
personal data).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, time
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError

from certexpiry.errors import ContractError
from certexpiry.store.answers import (
    AuditStatus,
    AuditUpserted,
    BatchFenced,
    BatchProcessed,
    ClaimOutcome,
    CompletionFenced,
    Handoff,
    MissedAnswer,
    NightlyClaim,
    OutboxBacklog,
    RunFinished,
    SchemaVersion,
    SegmentClaim,
)

Signatures = Mapping[str, Mapping[str, str]]

# RPC name -> argument name -> Postgres type (as format_type() spells it), in pg_proc's order.
# Both transports send only the arguments the caller names; the others take their SQL default
# (p_now and p_run_at exist for tests that pin the clock; the job never sends them).
RPC_SIGNATURES: Signatures = {
    "claim_nightly_run": {
        "p_run_id": "uuid",
        "p_timezone": "text",
        "p_lease_seconds": "integer",
        "p_now": "timestamp with time zone",
    },
    "claim_continuation": {
        "p_run_id": "uuid",
        "p_segment": "integer",
        "p_lease_seconds": "integer",
        "p_now": "timestamp with time zone",
    },
    "process_expiry_batch": {
        "p_run_id": "uuid",
        "p_segment": "integer",
        "p_cursor": "text",
        "p_limit": "integer",
        "p_reminder_days": "integer[]",
        "p_lease_seconds": "integer",
        "p_failed_ahead": "text[]",
    },
    "handoff_run": {"p_run_id": "uuid", "p_segment": "integer", "p_lease_seconds": "integer"},
    "complete_run": {"p_run_id": "uuid", "p_segment": "integer"},
    "get_missed_auto_pauses": {"p_timezone": "text", "p_today": "date", "p_limit": "integer"},
    "upsert_cron_audit": {
        "p_run_id": "uuid",
        "p_missed_pause_count": "integer",
        "p_missed_ids": "jsonb",
        "p_status": "text",
        "p_nightly_key": "date",
        "p_segments": "integer",
        "p_totals": "jsonb",
        "p_duration_ms": "bigint",
        "p_run_at": "timestamp with time zone",
    },
    # The schema check at cold start (supabase/schemas/70_ops_api.sql).
    "schema_version": {},
    # The nightly OUTBOX_BACKLOG line (supabase/schemas/75_outbox_api.sql).
    "outbox_backlog": {},
}

# The newest migration this release's SQL contract was built with: the function refuses (at cold
# start, SCHEMA_MISMATCH) a database whose newest applied migration is older. A test holds it
# equal to the newest file in supabase/migrations/.
SCHEMA_VERSION = "20261203000000"

SQL_DEFAULT: Any = object()
"""An argument's value that sends no value: the RPC's SQL default applies (as when omitted)."""

T = TypeVar("T")
_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")
_MAX_LISTED = 10


class Answer(Generic[T]):
    """One RPC: its arguments (named from `signatures`, the registry it belongs to) and how its
    JSON answer is checked; `tag` names the key a union of models keys on."""

    def __init__(
        self,
        rpc: str,
        shape: Any,
        *,
        tag: str | None = None,
        signatures: Signatures = RPC_SIGNATURES,
    ) -> None:
        self.rpc = rpc
        self.tag = tag
        self.signature = signatures[rpc]  # a KeyError at import: an RPC missing from the list
        keyed: Any = shape if tag is None else Annotated[shape, Field(discriminator=tag)]
        self._adapter: TypeAdapter[T] = TypeAdapter(keyed)

    def arguments(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The call's JSON arguments: `name` becomes the signature's `p_name` (a TypeError for
        a name the RPC lacks, before anything is sent), UUIDs and dates their text, sequences
        lists and mappings objects (their items
        likewise); an argument given as SQL_DEFAULT is left out."""
        arguments: dict[str, Any] = {}
        for name, value in values.items():
            key = f"p_{name}"
            if key not in self.signature:
                raise TypeError(f"{self.rpc} has no argument {key}")
            if value is not SQL_DEFAULT:
                arguments[key] = _json(value)
        return arguments

    def parse(self, data: Any) -> T:
        """The answer as its model; ContractError (fields, never values) for any other shape."""
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            problems = [self._problem(error) for error in exc.errors(include_url=False)]
        # Raised outside the except block: the ValidationError (it quotes the values) is
        # neither the cause nor the context of the ContractError.
        raise ContractError(self.rpc, _listed(problems))

    def _problem(self, error: Any) -> str:
        loc: tuple[int | str, ...] = tuple(error["loc"])
        if self.tag is not None:  # a union keyed on `tag`: pydantic puts the matched tag first
            loc = (self.tag,) if error["type"] in _TAG_ERRORS else loc[1:]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        return f"{path.lstrip('.') or '(answer)'} ({error['type']})"


def _json(value: Any) -> Any:
    """An argument's value as JSON has it (what PostgREST receives; psycopg casts it)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_json(item) for item in value]
    return value


def _listed(problems: list[str]) -> list[str]:
    if len(problems) <= _MAX_LISTED:
        return problems
    return [*problems[:_MAX_LISTED], f"and {len(problems) - _MAX_LISTED} more"]


CLAIM_NIGHTLY_RUN: Answer[NightlyClaim] = Answer("claim_nightly_run", NightlyClaim, tag="outcome")
CLAIM_CONTINUATION: Answer[SegmentClaim] = Answer("claim_continuation", SegmentClaim, tag="outcome")
PROCESS_EXPIRY_BATCH: Answer[BatchFenced | BatchProcessed] = Answer(
    "process_expiry_batch", BatchFenced | BatchProcessed, tag="fenced"
)
HANDOFF_RUN: Answer[Handoff] = Answer("handoff_run", Handoff)
COMPLETE_RUN: Answer[CompletionFenced | RunFinished] = Answer(
    "complete_run", CompletionFenced | RunFinished, tag="fenced"
)
GET_MISSED_AUTO_PAUSES: Answer[MissedAnswer] = Answer("get_missed_auto_pauses", MissedAnswer)
UPSERT_CRON_AUDIT: Answer[AuditUpserted] = Answer("upsert_cron_audit", AuditUpserted)
SCHEMA_VERSION_ANSWER: Answer[SchemaVersion] = Answer("schema_version", SchemaVersion)
OUTBOX_BACKLOG: Answer[OutboxBacklog] = Answer("outbox_backlog", OutboxBacklog)

# The function's RPCs' answers, by name (the keys are RPC_SIGNATURES').
ANSWERS: Mapping[str, Answer[Any]] = {
    answer.rpc: answer
    for answer in (
        CLAIM_NIGHTLY_RUN,
        CLAIM_CONTINUATION,
        PROCESS_EXPIRY_BATCH,
        HANDOFF_RUN,
        COMPLETE_RUN,
        GET_MISSED_AUTO_PAUSES,
        UPSERT_CRON_AUDIT,
        SCHEMA_VERSION_ANSWER,
        OUTBOX_BACKLOG,
    )
}


def literal_words(*types: Any) -> Iterator[str]:
    """The string values of Literal types (nested ones too)."""
    for found in types:
        for arg in get_args(found):
            if isinstance(arg, str):
                yield arg
            else:
                yield from literal_words(arg)


VOCABULARY: frozenset[str] = frozenset(
    [
        *RPC_SIGNATURES,
        *literal_words(ClaimOutcome, AuditStatus, Literal["auto_pause", "reminder"]),
    ]
)
"""The contract's words, which may be logged as they are (operation, outcome, status): its own
constants, never a value read at run time. The store package gives them to the log's vocabulary
(certexpiry.redact.WORDS) when it is imported; this module changes no global."""
