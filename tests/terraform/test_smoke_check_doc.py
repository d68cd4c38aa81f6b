"""The smoke check of docs/deploy.md says what it means: its log queries, run through the
Logging query evaluator, find a 2xx request entry and a RUN_COMPLETED line of this function
and nothing else; the outputs it reads exist; its subscription pattern is the alert's."""

from __future__ import annotations

import re
from pathlib import Path

from tests.terraform.logquery import (
    NO_AVAILABLE_INSTANCE,
    compile_filter,
    entry_from_line,
    request_entry,
)
from tests.terraform.test_terraform_cli import needs_terraform
from tests.terraform.tfmodule import REPO_ROOT, evaluate, load_module, scratch_module

SERVICE = "certexpiry-nightly-sweep"


def _section() -> str:
    text = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    start = text.index("### Smoke check")
    return text[start : text.index("\n### ", start + 1)]


def _queries() -> list[str]:
    """The filters of the section's `gcloud logging read` commands, as the shell passes them
    (with $SERVICE set to the default function name)."""
    found = re.findall(r'\n  "(resource\.type=.*?)" \\\n', _section())
    return [q.replace('\\"', '"').replace("$SERVICE", SERVICE) for q in found]


def test_the_smoke_check_queries_find_a_2xx_and_run_completed() -> None:
    """First query: the function's 2xx request entries only; second: its RUN_COMPLETED line."""
    requests, completed = (compile_filter(q) for q in _queries())
    assert requests(request_entry(200, service=SERVICE))
    assert requests(request_entry(204, service=SERVICE))
    assert not requests(request_entry(503, service=SERVICE))
    assert not requests(request_entry(429, service=SERVICE, platform=NO_AVAILABLE_INSTANCE))
    assert not requests(request_entry(200, service="another-service"))
    line = '{"severity": "INFO", "error_code": "RUN_COMPLETED", "context": {"segments": 1}}'
    assert completed(entry_from_line(line, stream="stdout", service=SERVICE))
    other = line.replace("RUN_COMPLETED", "RUN_BUSY")
    assert not completed(entry_from_line(other, stream="stdout", service=SERVICE))
    assert not completed(request_entry(200, service=SERVICE))


def test_the_outputs_the_smoke_check_reads_exist() -> None:
    """Every `terraform output -raw NAME` of the section is an output of the module."""
    names = set(re.findall(r"terraform output -raw ([a-z_]+)", _section()))
    assert {"function_name", "manual_run_command", "trigger_subscription_regex"} <= names
    assert names <= set(load_module().outputs)
    value = load_module().outputs["trigger_subscription_regex"]["value"]
    assert value == "${local.trigger_subscription_regex}"


@needs_terraform
def test_the_pattern_is_the_alerts_and_matches_eventarcs_names(tmp_path: Path) -> None:
    """The pattern the smoke check lists subscriptions by (grep -Ex, a whole-name match like
    the alert's monitoring.regex.full_match) takes the trigger's subscription and not the
    dead-letter hold subscription or another function's."""
    module = scratch_module(tmp_path, "variables.tf", "log_metrics.tf")
    pattern = evaluate(module, "local.trigger_subscription_regex", "project_id=certexpiry-test")
    assert pattern == "eventarc-europe-north1-certexpiry-nightly-sweep-.*"
    text = load_module().files["monitoring.tf"]
    assert 'monitoring.regex.full_match(\\"${local.trigger_subscription_regex}\\")' in text
    assert "grep -Ex" in _section()
    assert re.fullmatch(pattern, "eventarc-europe-north1-certexpiry-nightly-sweep-123-sub-456")
    assert not re.fullmatch(pattern, "certexpiry-nightly-sweep-dead-letter-hold")
    assert not re.fullmatch(pattern, "eventarc-europe-west1-certexpiry-nightly-sweep-1-sub-2")
