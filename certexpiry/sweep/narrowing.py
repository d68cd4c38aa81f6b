"""How a segment gets past a batch that fails as a whole (docs/decisions/0028): the same page
again with half as many certifications, down to one; a certification that fails even alone is
passed as failed by the next call, which carries its SQLSTATE (`failed_ahead`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from certexpiry.codes import Code
from certexpiry.errors import STATEMENT_TIMEOUT, ContractError, DatabaseError, RpcError, StoreError
from certexpiry.log import JsonLogger
from certexpiry.redact import is_sqlstate


@dataclass
class Narrowing:
    """Where the search stands: a call that only passes the failed certification (batch size
    0), or, after a statement timeout, one that passes it and does the next certification
    (whose timing out too means the database is slow). Carried in the continuation, so a
    hand-off does not start the search again."""

    batch_size: int
    failed_ahead: list[str] = field(default_factory=list)

    def narrow(
        self, error: StoreError, log: JsonLogger, *, segment: int, cursor: str | None
    ) -> None:
        """After a batch failed as a whole, nothing of it kept: the same page again, half as
        large; at one certification, that certification is passed as failed by the next call
        (with its SQLSTATE) and what follows gets done. Raises the error when no smaller batch
        can help: a refusal of the call, a transient failure (redelivered), a call that only
        passes certifications failing too (not a row's error: the night stops), or a second
        certification in a row that outlives the statement timeout alone (the database is
        slow, not a row: nothing of the passing is kept, the redelivery resumes from the
        checkpoint)."""
        sqlstate = _row_sqlstate(error)
        if sqlstate is None or self.batch_size == 0:
            raise error
        if self.batch_size > 1:
            self.batch_size = max(1, self.batch_size // 2)
            log.warning(
                Code.BATCH_SHRUNK,
                "A batch failed as a whole; going on with smaller batches.",
                segment=segment,
                batch_size=self.batch_size,
                **error.log_context(),
            )
            return
        if sqlstate == STATEMENT_TIMEOUT and STATEMENT_TIMEOUT in self.failed_ahead:
            raise error
        self.failed_ahead.append(sqlstate)
        # A timed-out certification is passed together with the next one, so that a database
        # slow for every row is told from one slow row before anything is passed.
        self.batch_size = 1 if sqlstate == STATEMENT_TIMEOUT else 0
        log.warning(
            Code.ROW_FAILED_ALONE,
            "A certification fails even in a batch of one; the next call passes it as failed.",
            segment=segment,
            cursor=cursor,
            position=len(self.failed_ahead),
            **error.log_context(),
        )


# SQLSTATE classes about the call or the server, not a row: a smaller batch fails the same way.
# Feature not supported, invalid authorization, syntax or access rule (42501, 42883), invalid
# catalog or schema name; operator intervention (57014 aside, handled first), system error (I/O),
# configuration file error.
_CALL_SQLSTATE_CLASSES = ("0A", "28", "3D", "3F", "42", "57", "58", "F0")


def _row_sqlstate(error: StoreError) -> str | None:
    """The SQLSTATE of a batch failure a smaller batch may not have, or None: a statement
    timeout (57014), or an error that is neither transient nor about the call itself, so
    possibly one row's (a trigger raising, an ASSERT, a constraint no row's isolation caught).
    None for an answer outside the contract (the batch committed), a refusal of the call
    (permission, a missing function: PostgREST's PGRST codes, HTTP 401/403/404 without a
    SQLSTATE) or a driver error without one."""
    if error.statement_timeout:
        return STATEMENT_TIMEOUT
    if error.transient or isinstance(error, ContractError):
        return None
    if isinstance(error, DatabaseError):
        code = error.sqlstate
    elif isinstance(error, RpcError):
        code = error.postgrest_code
    else:
        return None
    if code is None or not is_sqlstate(code) or code.startswith(_CALL_SQLSTATE_CLASSES):
        return None
    return code
