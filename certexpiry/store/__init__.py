"""The store: what the sweep needs from the database, over the SQL API where the rules live.

    port        the Protocol the sweep uses and the tagged values it matches on
    rpc         RpcStore, the port over one RpcTransport; `call`, the one way an RPC is called
    contract    the function's RPCs: signatures (checked against pg_proc) and answers
    answers     the answers' pydantic models
    postgres    the Postgres transport (psycopg; DATABASE_URL)
    postgrest   the PostgREST transport (Supabase's HTTP API)

The transports are imported by name where they are built (certexpiry.wiring), not here: each
pulls in its own driver.
"""

from certexpiry.redact import WORDS
from certexpiry.store.answers import COUNT_KEYS, AuditStatus, ClaimOutcome, Counts, OutboxBacklog
from certexpiry.store.contract import VOCABULARY
from certexpiry.store.port import (
    AuditRow,
    BatchResult,
    Busy,
    Completed,
    Completion,
    ContinuationClaim,
    Duplicate,
    MissedReport,
    NightlyClaim,
    Owned,
    RecordFailure,
    Store,
    Unknown,
)
from certexpiry.store.rpc import RpcStore, RpcTransport, call, record_failures

# The contract's words join the log's vocabulary here, where the store is wired to the privacy
# layer, so the contract itself stays plain data that changes no global.
WORDS.update(VOCABULARY)

__all__ = [
    "COUNT_KEYS",
    "AuditRow",
    "AuditStatus",
    "BatchResult",
    "Busy",
    "ClaimOutcome",
    "Completed",
    "Completion",
    "ContinuationClaim",
    "Counts",
    "Duplicate",
    "MissedReport",
    "NightlyClaim",
    "OutboxBacklog",
    "Owned",
    "RecordFailure",
    "RpcStore",
    "RpcTransport",
    "Store",
    "Unknown",
    "call",
    "record_failures",
]
