"""`certexpiry plan` against the sweep: the plan of a night is what the following run does."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from certexpiry_ops.contract import PLAN_NIGHT, Plan
from tests.clock import OrgDay
from tests.integration.test_cli import Cli, refuse_two, seed
from tests.integration.test_cli import cli as cli  # the fixture, shared
from tests.seeding import add_cert, add_mentor

Conn = psycopg.Connection[Any]

# Every table the sweep writes, read in full: a plan must leave each exactly as it was.
_SNAPSHOT = {
    "peer_mentors": "select id, status, paused_at, paused_reason, updated_at from public.peer_mentors",
    "certifications": "select id, status, paused_at, next_action_on::text, updated_at "
    "from public.certifications",
    "certification_idempotency_log": "select * from certexpiry.certification_idempotency_log",
    "notification_outbox": "select id, certification_id, kind from certexpiry.notification_outbox",
    "cron_runs": "select * from certexpiry.cron_runs",
}


def snapshot(db: Conn) -> dict[str, list[tuple[Any, ...]]]:
    return {
        name: sorted(db.execute(query).fetchall(), key=repr) for name, query in _SNAPSHOT.items()
    }


def plan_of(cli: Cli, *args: str) -> Plan:
    result = cli("plan", "--json", "--ids", "100000", *args)
    assert result.code == 0, result.err
    (line,) = result.out.splitlines()
    return PLAN_NIGHT.parse(json.loads(line))


def ids(items: Any) -> set[str]:
    return {str(item) for item in items}


def test_plan_matches_the_following_run_count_for_count_and_id_for_id(
    cli: Cli, db: Conn, database_url: str, org: OrgDay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the demo generator's data (with two pauses refused by the demo trigger), plan writes
    nothing, and the multi-segment run that follows does exactly what it listed."""
    seed(db, org, mentors=400)
    refused = refuse_two(db, database_url, org)
    before = snapshot(db)
    active_mentors = ids(
        row[0] for row in db.execute("select id from public.peer_mentors where status = 'active'")
    )
    plan = plan_of(cli)
    assert snapshot(db) == before  # nothing written, nothing left locked or half-done
    assert plan.run is None
    assert plan.reminders_queued > 0
    assert plan.reminders_superseded > 0
    assert plan.certifications_paused.count > 0
    assert plan.mentors_paused.count > 0
    assert ids(plan.failures.ids) == ids(refused)

    monkeypatch.setenv("TIME_BUDGET_S", "0.001")  # one batch per segment: many segments
    monkeypatch.setenv("MONITORING_RESERVE_S", "0")
    run = cli("run", "--json")
    assert run.codes()[-1] == "RUN_COMPLETED", run.err
    completed = run.with_code("RUN_COMPLETED")[0]
    assert completed["context"]["segments"] > 3
    run_id = completed["cron_run_id"]
    totals = completed["context"]

    assert totals["certifications"] == plan.certifications
    for key in ("reminders_queued", "reminders_superseded"):
        assert totals[key] == getattr(plan, key), key
    for key in ("certifications_paused", "mentors_paused", "failures"):
        assert totals[key] == getattr(plan, key).count, key
        assert totals[key] == plan.counts[key], key

    recorded: dict[tuple[str, str], set[str]] = {}
    for cert_id, action, outcome in db.execute(
        "select certification_id, action, outcome from certexpiry.certification_idempotency_log "
        "where run_id = %s",
        (run_id,),
    ):
        recorded.setdefault((action, outcome), set()).add(str(cert_id))
    expected = {("auto_pause", "done"): ids(plan.certifications_paused.ids)}
    for day, listed in plan.reminders.items():
        expected[(f"reminder_{day}d", "done")] = ids(listed.ids)
    for day, listed in plan.superseded.items():
        expected[(f"reminder_{day}d", "superseded")] = ids(listed.ids)
    assert recorded == expected
    paused_now = ids(
        row[0] for row in db.execute("select id from public.peer_mentors where status = 'paused'")
    )
    assert paused_now & active_mentors == ids(plan.mentors_paused.ids)
    failed = ids(e["context"]["certification_id"] for e in run.with_code("DB_OPERATION_FAILED"))
    assert failed == ids(plan.failures.ids)

    after = plan_of(cli)  # tonight's run is done: the plan says so, and nothing is left but
    assert after.run is not None
    assert after.run.status == "completed"
    assert ids(after.failures.ids) == ids(refused)  # what the trigger still refuses
    assert after.reminders_queued == 0
    assert after.certifications_paused.count == 0


def test_plan_lists_are_capped_but_counts_are_complete(cli: Cli, db: Conn, org: OrgDay) -> None:
    """--ids N lists the N lowest IDs of each kind; the counts stay whole; text mode says
    nothing was written."""
    seed(db, org, mentors=120)
    full = plan_of(cli)
    short = plan_of(cli, "--ids", "2")  # the later --ids wins
    assert short.certifications_paused.count == full.certifications_paused.count
    assert (
        list(short.certifications_paused.ids) == sorted(full.certifications_paused.ids, key=str)[:2]
    )
    text = cli("plan", "--format", "text")
    assert text.code == 0
    assert "certifications paused" in text.out
    assert f"{full.certifications_paused.count:>7,}" in text.out
    assert "Nothing was written." in text.out


def test_plan_of_a_later_night(cli: Cli, db: Conn, org: OrgDay) -> None:
    """--date plans another night: a certification 10 days from expiry gets its 30-day reminder
    tonight, and three nights on its 7-day one with the 30-day one superseded."""
    cert = str(add_cert(db, add_mentor(db), org.today + timedelta(days=10)))
    tonight = plan_of(cli)
    assert {day: ids(item.ids) for day, item in tonight.reminders.items()} == {"30": {cert}}
    assert tonight.superseded == {}
    later = plan_of(cli, "--date", (org.today + timedelta(days=3)).isoformat())
    assert {day: ids(item.ids) for day, item in later.reminders.items()} == {"7": {cert}}
    assert {day: ids(item.ids) for day, item in later.superseded.items()} == {"30": {cert}}
    bad = cli("plan", "--date", "tomorrow")
    assert bad.code == 2
    assert "--date must be a date" in bad.err


def test_plan_text_lists_what_it_got_and_counts_the_rest(cli: Cli, db: Conn, org: OrgDay) -> None:
    """The text lists every ID the plan returned (all --ids of them, not three) and says how
    many more there are, exactly; --all lists every ID and says no "more"; the two options
    exclude each other."""
    seed(db, org, mentors=120)
    full = plan_of(cli)
    paused = sorted(str(item) for item in full.certifications_paused.ids)
    assert len(paused) > 5
    text = cli("plan", "--format", "text", "--ids", "5").out
    shown = [item for item in paused if item in text]
    assert shown == paused[:5]
    assert f"… and {len(paused) - 5:,} more" in text
    every = cli("plan", "--format", "text", "--all")
    assert every.code == 0, every.err
    assert [item for item in paused if item in every.out] == paused
    assert "more (--all" not in every.out
    listed = cli("plan", "--json", "--all")
    assert len(PLAN_NIGHT.parse(listed.entries[0]).certifications_paused.ids) == len(paused)
    assert cli("plan", "--all", "--ids", "3").code == 2


def test_plan_says_nothing_more_when_the_list_is_whole(cli: Cli, db: Conn, org: OrgDay) -> None:
    """A list no longer than --ids is shown whole, without a "more" line."""
    certs = sorted(
        str(add_cert(db, add_mentor(db), org.today - timedelta(days=1))) for _ in range(4)
    )
    text = cli("plan", "--format", "text", "--ids", "4").out
    assert [item for item in certs if item in text] == certs
    assert "more" not in text
