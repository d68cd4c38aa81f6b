"""Static wiring checks of terraform/, read with python-hcl2 (no provider, no cloud needed)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.terraform.tfmodule import (
    REPO_ROOT,
    TERRAFORM_DIR,
    Module,
    block,
    expr,
    is_expr,
    load_module,
    strings_in,
)

FUNCTION = "google_cloudfunctions2_function"
TOPIC_REF = "${google_pubsub_topic.sweep.id}"
SECRET_NAMES = {"SUPABASE_SERVICE_ROLE_KEY", "DATABASE_URL"}
PRIMITIVE_ROLE = re.compile(r"roles/(owner|editor|viewer)\b")
# Project-level grants that cannot be scoped lower (each commented in iam.tf): writing log
# entries exists only at project level. Anything else at project level must carry a condition.
ALLOWED_PROJECT_ROLES = {"roles/logging.logWriter"}


@pytest.fixture(scope="module")
def tf() -> Module:
    """The parsed terraform/ module."""
    return load_module()


def _function(tf: Module) -> dict[str, Any]:
    functions = tf.of_type(FUNCTION)
    assert len(functions) == 1, f"expected one {FUNCTION}, found {sorted(functions)}"
    return next(iter(functions.values()))


def _sa_of(email_ref: str) -> str:
    """`${google_service_account.X.email}` -> X."""
    match = re.fullmatch(r"\$\{google_service_account\.([a-z0-9_]+)\.email\}", email_ref)
    assert match, f"expected a google_service_account email reference, got {email_ref!r}"
    return match.group(1)


def _member_sa(member: str) -> str:
    """`serviceAccount:${google_service_account.X.email}` -> X."""
    match = re.fullmatch(
        r"serviceAccount:\$\{google_service_account\.([a-z0-9_]+)\.email\}", member
    )
    assert match, f"expected a member naming a google_service_account, got {member!r}"
    return match.group(1)


def _default(tf: Module, name: str) -> Any:
    assert name in tf.variables, f"no variable {name}"
    return tf.variables[name].get("default")


def _function_env(tf: Module) -> dict[str, Any]:
    """The function's plain environment variables: local.base_env plus local.optional_env."""
    service = block(_function(tf), "service_config")
    assert service["environment_variables"] == "${merge(local.base_env, local.optional_env)}"
    base = tf.locals["base_env"]
    assert isinstance(base, dict)
    return base


def test_every_variable_has_a_description(tf: Module) -> None:
    """Every variable declares a type and a non-trivial description."""
    assert tf.variables
    for name, body in tf.variables.items():
        assert "type" in body, f"variable {name} has no type"
        description = body.get("description")
        assert isinstance(description, str), f"{name}: no description"
        assert len(description) >= 20, f"{name}: description too short"
        assert not is_expr(description), f"{name}: description must be a literal"


def test_every_non_boolean_variable_is_validated(tf: Module) -> None:
    """Each variable that can hold a wrong value (everything but bools) has a validation block."""
    for name, body in tf.variables.items():
        if body["type"] == "${bool}" or body["type"] == "bool":
            continue
        validations = body.get("validation", [])
        assert validations, f"variable {name} has no validation"
        for rule in validations:
            assert is_expr(rule["condition"]), name
            assert rule["error_message"], name


def test_trigger_topic_is_the_continuation_topic_and_the_scheduler_target(tf: Module) -> None:
    """The trigger, CONTINUATION_TOPIC and the scheduler all name the same topic resource."""
    trigger = block(_function(tf), "event_trigger")
    assert trigger["pubsub_topic"] == TOPIC_REF
    assert trigger["event_type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert _function_env(tf)["CONTINUATION_TOPIC"] == TOPIC_REF
    jobs = tf.of_type("google_cloud_scheduler_job")
    assert len(jobs) == 1
    target = block(next(iter(jobs.values())), "pubsub_target")
    assert target["topic_name"] == TOPIC_REF
    assert "sweep" in tf.of_type("google_pubsub_topic")


def test_function_service_account_can_publish_to_its_topic(tf: Module) -> None:
    """The function's runtime account is publisher on the trigger topic itself."""
    runtime_sa = _sa_of(block(_function(tf), "service_config")["service_account_email"])
    grants = [
        g
        for g in tf.of_type("google_pubsub_topic_iam_member").values()
        if g["topic"] == TOPIC_REF and g["role"] == "roles/pubsub.publisher"
    ]
    assert [_member_sa(g["member"]) for g in grants] == [runtime_sa]


def test_secret_is_mounted_from_secret_manager_and_never_plain(tf: Module) -> None:
    """The DB credential is a secret_environment_variable; only the function may read it."""
    service = block(_function(tf), "service_config")
    mounted = block(service, "secret_environment_variables")
    assert mounted["key"] == "${var.secret_env_var_name}"
    assert _default(tf, "secret_env_var_name") in SECRET_NAMES
    rule = tf.variables["secret_env_var_name"]["validation"][0]["condition"]
    assert all(f'"{name}"' in rule for name in SECRET_NAMES)
    secret_ref = expr(mounted["secret"])
    match = re.fullmatch(r"google_secret_manager_secret\.([a-z0-9_]+)\.secret_id", secret_ref)
    assert match, secret_ref
    secret = match.group(1)

    assert not set(_function_env(tf)) & SECRET_NAMES, "a secret must not be a plain env var"
    optional = tf.locals["optional_env"]
    assert re.findall(r"([A-Z_]+)\s*=\s*[^=]", optional) == ["SUPABASE_URL"], optional
    assert "google_secret_manager_secret_version" not in tf.resources, "values stay out of state"
    credential = re.compile(r"service_role|password|database_url|api_key|secret_value|secret_data")
    assert not [v for v in tf.variables if credential.search(v)], (
        "no variable may carry a credential"
    )

    runtime_sa = _sa_of(service["service_account_email"])
    accessors = [
        g
        for g in tf.of_type("google_secret_manager_secret_iam_member").values()
        if g["role"] == "roles/secretmanager.secretAccessor"
    ]
    assert len(accessors) == 1
    assert accessors[0]["secret_id"] == f"${{google_secret_manager_secret.{secret}.id}}"
    assert _member_sa(accessors[0]["member"]) == runtime_sa


def test_time_budget_is_derived_from_the_timeout_in_one_place(tf: Module) -> None:
    """TIME_BUDGET_S = timeout_seconds - budget_reserve_s, computed once; 420 < 540 by default."""
    assert expr(tf.locals["time_budget_s"]) == "var.timeout_seconds - var.budget_reserve_s"
    assert _function_env(tf)["TIME_BUDGET_S"] == "${tostring(local.time_budget_s)}"
    service = block(_function(tf), "service_config")
    assert service["timeout_seconds"] == "${var.timeout_seconds}"
    timeout, reserve = _default(tf, "timeout_seconds"), _default(tf, "budget_reserve_s")
    assert timeout == 540
    assert 0 < timeout - reserve < timeout
    assert timeout - reserve == 420
    conditions = [p["condition"] for p in block(_function(tf), "lifecycle")["precondition"]]
    assert "${local.time_budget_s > 0 && local.time_budget_s < var.timeout_seconds}" in conditions
    everything = "\n".join(tf.files.values())
    assert len(re.findall(r"var\.timeout_seconds\s*-\s*var\.budget_reserve_s", everything)) == 1


def test_retry_policy_is_retry(tf: Module) -> None:
    """Failed deliveries are retried (RETRY_POLICY_RETRY) through a dedicated trigger account."""
    trigger = block(_function(tf), "event_trigger")
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert _sa_of(trigger["service_account_email"]) != _sa_of(
        block(_function(tf), "service_config")["service_account_email"]
    )


def test_runtime_and_entry_point(tf: Module) -> None:
    """The function runs Python 3.12-3.14, entry point nightly_sweep, memory/instances as vars."""
    build = block(_function(tf), "build_config")
    assert build["entry_point"] == "nightly_sweep"
    assert build["runtime"] == "${var.runtime}"
    assert _default(tf, "runtime") in {"python312", "python313", "python314"}
    condition = tf.variables["runtime"]["validation"][0]["condition"]
    assert all(f'"{r}"' in condition for r in ("python312", "python313", "python314"))
    service = block(_function(tf), "service_config")
    assert service["available_memory"] == "${var.memory}"
    assert service["max_instance_count"] == "${var.max_instance_count}"
    storage = block(block(build, "source"), "storage_source")
    assert storage["object"] == "${google_storage_bucket_object.source.name}"


def test_trigger_may_invoke_only_the_function_service(tf: Module) -> None:
    """roles/run.invoker goes to the trigger account on the function's own Cloud Run service."""
    trigger_sa = _sa_of(block(_function(tf), "event_trigger")["service_account_email"])
    invokers = tf.of_type("google_cloud_run_service_iam_member")
    assert len(invokers) == 1
    grant = next(iter(invokers.values()))
    assert grant["role"] == "roles/run.invoker"
    assert grant["service"] == f"${{{FUNCTION}.sweep.service_config[0].service}}"
    assert _member_sa(grant["member"]) == trigger_sa


def test_no_primitive_roles_and_minimal_project_grants(tf: Module) -> None:
    """No owner/editor/viewer anywhere, no authoritative IAM, project-level roles allow-listed."""
    for rtype, by_name in tf.resources.items():
        for name, body in by_name.items():
            for text in strings_in(body):
                assert not PRIMITIVE_ROLE.search(text), f"{rtype}.{name} uses {text!r}"
    for text in tf.files.values():  # comments included
        assert not PRIMITIVE_ROLE.search(text)
    authoritative = [r for r in tf.resources if r.endswith(("_iam_binding", "_iam_policy"))]
    assert not authoritative, f"authoritative IAM would remove others' grants: {authoritative}"
    for name, grant in tf.of_type("google_project_iam_member").items():
        if grant["role"] in ALLOWED_PROJECT_ROLES:
            continue
        condition = block(grant, "condition")
        assert "resource.name ==" in condition["expression"], f"{name}: unconditioned"
    assert "roles/run.builder" not in "\n".join(
        g["role"] for g in tf.of_type("google_project_iam_member").values()
    ), "run.builder reads every bucket and repository of the project"


def test_every_iam_grant_is_explained(tf: Module) -> None:
    """Each IAM member resource is preceded by a comment saying why it exists."""
    for name, text in tf.files.items():
        for match in re.finditer(
            r'^resource "google_[a-z0-9_]*_iam_member" "([a-z0-9_]+)"', text, re.M
        ):
            before = text[: match.start()].rstrip("\n").splitlines()
            assert before, f"{name}: {match.group(1)}"
            assert before[-1].lstrip().startswith("#"), f"{name}: {match.group(1)}"


# certexpiry/ modules that are in the repository but not deployed, and why.
NOT_DEPLOYED = {"__main__": "only opens the ops command line (certexpiry_ops)"}


def test_source_archive_takes_the_runtime_package_and_nothing_else(tf: Module) -> None:
    """The archive is main.py, requirements.txt and the runtime package certexpiry/ by directory
    (its .py files, subpackages too), minus exactly the modules named as not deployed; no other
    directory is globbed. test_terraform_cli.py renders the list and proves no tooling is in it."""
    archive = tf.data["archive_file"]["source"]
    assert "source_dir" not in archive
    assert "source_file" not in archive
    dynamic = archive["dynamic"][0]["source"]
    assert dynamic["for_each"] == "${toset(local.source_files)}"
    assert tf.locals["source_top_level_files"] == ["main.py", "requirements.txt"]
    assert tf.locals["runtime_not_deployed"] == [f"{name}.py" for name in NOT_DEPLOYED]
    runtime = tf.locals["runtime_files"]
    assert 'fileset("${local.repo_root}/certexpiry", "**/*.py")' in runtime, runtime
    assert "!contains(local.runtime_not_deployed, name)" in runtime, runtime
    text = (TERRAFORM_DIR / "source_files.tf").read_text(encoding="utf-8")
    assert text.count("fileset(") == 1, "only the runtime package is taken by directory"
    assert tf.locals["source_files"] == (
        "${sort(concat(local.source_top_level_files, local.runtime_files))}"
    )


def test_scheduler_publishes_the_nightly_message(tf: Module) -> None:
    """The nightly job sends {"kind":"nightly"} on a configurable schedule, with retries."""
    job = next(iter(tf.of_type("google_cloud_scheduler_job").values()))
    assert job["schedule"] == "${var.schedule}"
    assert job["time_zone"] == "${var.time_zone}"
    assert _default(tf, "schedule") == "0 1 * * *"
    assert _default(tf, "time_zone") == "Etc/UTC"
    assert block(job, "pubsub_target")["data"] == "${base64encode(local.nightly_message)}"
    assert re.fullmatch(
        r'\$\{jsonencode\(\{\s*kind\s*=\s*"nightly"\s*\}\)\}', tf.locals["nightly_message"]
    )
    retry = block(job, "retry_config")
    assert retry["retry_count"] == "${var.scheduler_retry_count}"


def test_alerting_metrics_and_policies(tf: Module) -> None:
    """The metrics are built from local.log_metrics (what test_log_metrics.py evaluates), every
    policy notifies the channels, waits for its metrics and closes in 30 minutes."""
    metrics = tf.of_type("google_logging_metric")
    assert set(metrics) == {"counter", "distribution"}
    counter, distribution = metrics["counter"], metrics["distribution"]
    assert counter["for_each"] == "${local.counter_metrics}"
    assert distribution["for_each"] == "${local.distribution_metrics}"
    for metric in (counter, distribution):
        assert metric["filter"] == "${each.value.filter}"
        assert metric["name"] == "${each.value.name}"
    assert counter["label_extractors"] == "${each.value.label_extractors}"
    assert distribution["value_extractor"] == "${each.value.value_extractor}"
    assert set(tf.locals["log_metrics"]) >= {"errors", "missed_pause", "run_completed"}

    policies = tf.of_type("google_monitoring_alert_policy")
    assert set(policies) == {
        "log_lines",
        "run_not_completed",
        "stuck_message",
        "dead_letter",
        "outbox_stalled",
    }
    assert policies["log_lines"]["for_each"] == "${local.log_alerts}"
    log_alerts = tf.locals["log_alerts"]
    assert set(log_alerts) == {"errors", "missed_auto_pause", "nights_missed"}
    assert {a["metric"] for a in log_alerts.values()} <= set(tf.locals["log_metrics"])
    assert log_alerts["errors"]["group_by"] == ["metric.label.error_code"]
    for name, policy in policies.items():
        assert policy["notification_channels"] == "${var.notification_channels}", name
        assert block(policy, "alert_strategy")["auto_close"] == "${local.alert_auto_close}", name
    assert tf.locals["alert_auto_close"] == "1800s"
    for name in ("log_lines", "run_not_completed", "outbox_stalled"):
        assert policies[name]["depends_on"] == ["${time_sleep.metrics_visible}"], name
    promql = block(
        block(policies["run_not_completed"], "conditions"), "condition_prometheus_query_language"
    )
    assert promql["query"] == "${local.run_not_completed_promql}"
    assert promql["disable_metric_validation"] is True
    assert "hour() == ${var.completion_deadline_utc_hour}" in "".join(
        tf.locals["run_not_completed_promql"]
    )
    sleep = tf.resource("time_sleep", "metrics_visible")
    assert sleep["create_duration"] == "${var.metric_visibility_wait_s}s"
    assert "google_logging_metric.counter" in sleep["triggers"]["metrics"]
    assert "google_monitoring_dashboard" in tf.resources


def test_the_outbox_alert_fires_when_the_oldest_message_outlives_the_threshold(tf: Module) -> None:
    """The "sender stopped" policy compares the outbox age metric (OUTBOX_BACKLOG's
    outbox_oldest_age_s, evaluated in test_log_metrics.py) with outbox_stall_threshold_s: the
    mean per 5 minutes (one line a night: that line's value; ALIGN_MAX is not defined on a
    distribution), the max across revisions; its text points at the sender and the runbook."""
    metric = tf.locals["log_metrics"]["outbox_oldest_age"]
    assert metric["value_extractor"] == "EXTRACT(jsonPayload.context.outbox_oldest_age_s)"
    assert metric["unit"] == "s"
    assert metric["filter"] == "${local.code_filter.OUTBOX_BACKLOG}"
    assert "OUTBOX_BACKLOG" in tf.locals["code_filter"]
    policy = tf.resource("google_monitoring_alert_policy", "outbox_stalled")
    condition = block(block(policy, "conditions"), "condition_threshold")
    assert condition["filter"] == "${local.user_metric_filter.outbox_oldest_age}"
    assert condition["comparison"] == "COMPARISON_GT"
    assert condition["threshold_value"] == "${var.outbox_stall_threshold_s}"
    assert condition["duration"] == "0s"
    aggregation = block(condition, "aggregations")
    assert aggregation["per_series_aligner"] == "ALIGN_MEAN"
    assert aggregation["cross_series_reducer"] == "REDUCE_MAX"
    assert aggregation["alignment_period"] == "300s"
    assert block(condition, "trigger")["count"] == 1
    text = block(policy, "documentation")["content"]
    assert "sender" in text
    assert "The outbox and the app's sender" in text
    assert "docs/operations.md" in text
    heading = "## The outbox and the app's sender"
    assert heading in (REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")

    assert _default(tf, "outbox_stall_threshold_s") == 86400
    rule = tf.variables["outbox_stall_threshold_s"]["validation"][0]["condition"]
    assert "var.outbox_stall_threshold_s > 0" in rule


def test_a_missing_notification_channel_is_warned_about() -> None:
    """A check block asserts notification_channels is not empty (a warning on plan and apply)."""
    text = (TERRAFORM_DIR / "monitoring.tf").read_text(encoding="utf-8")
    check = re.search(r'check "[a-z_]+" \{\s*assert \{\s*condition\s*=\s*([^\n]+)', text)
    assert check is not None
    assert check.group(1).strip() == "length(var.notification_channels) > 0"


def test_the_build_is_narrowed_and_waited_for(tf: Module) -> None:
    """The build pushes to a repository this stack manages, with a repository-level grant; the
    function waits for the build grants and pins the uploaded source generation."""
    build = block(_function(tf), "build_config")
    assert build["docker_repository"] == "${google_artifact_registry_repository.functions.id}"
    storage = block(block(build, "source"), "storage_source")
    assert storage["generation"] == "${google_storage_bucket_object.source.generation}"
    repo = tf.resource("google_artifact_registry_repository", "functions")
    assert repo["format"] == "DOCKER"
    writer = tf.resource("google_artifact_registry_repository_iam_member", "build_writer")
    assert writer["repository"] == "${google_artifact_registry_repository.functions.name}"
    assert writer["role"] == "roles/artifactregistry.writer"
    assert _member_sa(writer["member"]) == "build"
    sleep = tf.resource("time_sleep", "build_grants")
    assert sleep["create_duration"] == "60s"
    assert "${time_sleep.build_grants}" in _function(tf)["depends_on"]
    build_grants = [
        f"${{{rtype}.{name}}}"
        for rtype, by_name in tf.resources.items()
        if rtype.endswith("_iam_member")
        for name, grant in by_name.items()
        if grant.get("member") == "serviceAccount:${google_service_account.build.email}"
    ]
    assert sorted(build_grants) == sorted(sleep["depends_on"])


def test_log_writer_is_off_by_default(tf: Module) -> None:
    """The runtime account writes stdout only; logWriter is granted only on request."""
    assert _default(tf, "grant_log_writer") is False
    grant = tf.resource("google_project_iam_member", "function_log_writer")
    assert grant["count"] == "${var.grant_log_writer ? 1 : 0}"


def test_topic_retention_is_the_functions_message_age_limit(tf: Module) -> None:
    """The topic keeps messages exactly as long as the function accepts them (one replay window)."""
    from certexpiry.messages import MAX_AGE

    limit = f"{int(MAX_AGE.total_seconds())}s"
    assert _default(tf, "topic_message_retention") == limit
    condition = tf.variables["topic_message_retention"]["validation"][0]["condition"]
    assert f"<= {int(MAX_AGE.total_seconds())}" in condition
    topic = tf.resource("google_pubsub_topic", "sweep")
    assert topic["message_retention_duration"] == "${var.topic_message_retention}"


def test_outputs_and_provider_pins(tf: Module) -> None:
    """Outputs expose the function URI, topic and scheduler job; google and archive are pinned."""
    assert {"function_uri", "sweep_topic", "scheduler_job"} <= set(tf.outputs)
    for output in tf.outputs.values():
        assert output.get("description")
    providers = tf.terraform[0]["required_providers"][0]
    for name in ("google", "archive"):
        assert providers[name]["version"].startswith("~>"), f"{name} must be pinned with ~>"
    assert (TERRAFORM_DIR / "terraform.tfvars.example").is_file()


def test_checkov_skips_are_justified(tf: Module) -> None:
    """Every inline checkov skip names a check and gives a real reason."""
    for name, text in tf.files.items():
        for line in text.splitlines():
            if "checkov:skip" in line:
                assert re.search(r"#checkov:skip=CKV2?_[A-Z]+_\d+:.{40,}", line), (
                    f"{name}: {line.strip()}"
                )


def test_a_duplicate_delivery_reaches_the_function(tf: Module) -> None:
    """Two instances by default, one request each: a delivery arriving while a segment runs is
    answered RUN_BUSY by the function (the database lease keeps one chain), not 429 by Cloud
    Run; and why is written next to the default."""
    assert _default(tf, "max_instance_count") == 2
    service = block(_function(tf), "service_config")
    assert service["max_instance_request_concurrency"] == 1
    text = tf.files["variables.tf"]
    why = text[text.index('variable "max_instance_count"') : text.index('variable "supabase_url"')]
    assert "lease" in why
    assert "429" in why


def test_no_moved_blocks(tf: Module) -> None:
    """No deployment exists, so there are no earlier addresses to move from."""
    for name, text in tf.files.items():
        assert not re.search(r"^\s*moved\s*\{", text, re.M), name


def test_the_build_account_is_storage_object_admin_on_the_two_source_buckets_only(
    tf: Module,
) -> None:
    """The build account's storage grants are roles/storage.objectAdmin (the role Google's
    build-service-account pages list for 2nd gen builds), each limited to one bucket: this
    stack's source bucket (bucket-level) and Cloud Functions' gcf-v2-sources bucket (a
    project-level grant conditioned on that bucket's name and its objects)."""
    build = "serviceAccount:${google_service_account.build.email}"
    storage = [
        (rtype, grant)
        for rtype, by_name in tf.resources.items()
        if rtype.endswith("_iam_member")
        for grant in by_name.values()
        if grant.get("member") == build and str(grant.get("role", "")).startswith("roles/storage.")
    ]
    assert sorted(rtype for rtype, _ in storage) == [
        "google_project_iam_member",
        "google_storage_bucket_iam_member",
    ]
    for rtype, grant in storage:
        assert grant["role"] == "roles/storage.objectAdmin", rtype
        if rtype == "google_storage_bucket_iam_member":
            assert grant["bucket"] == "${google_storage_bucket.source.name}"
        else:
            expression = block(grant, "condition")["expression"]
            assert expression == (
                'resource.name == "${local.gcf_sources_bucket}" || '
                'resource.name.startsWith("${local.gcf_sources_bucket}/")'
            )
    assert tf.locals["gcf_sources_bucket"] == (
        "projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}"
    )


def test_the_secret_survives_a_plan_and_its_version_is_pinned(tf: Module) -> None:
    """The secret cannot be destroyed by a plan (prevent_destroy), and the function reads a
    numbered version, 1 by default, never latest unless the validation is changed."""
    secret = tf.resource("google_secret_manager_secret", "db")
    assert block(secret, "lifecycle")["prevent_destroy"] is True
    mounted = block(block(_function(tf), "service_config"), "secret_environment_variables")
    assert mounted["version"] == "${var.secret_version}"
    assert _default(tf, "secret_version") == "1"
    condition = tf.variables["secret_version"]["validation"][0]["condition"]
    assert "latest" not in condition
    text = (TERRAFORM_DIR / "terraform.tfvars.example").read_text(encoding="utf-8")
    assert re.search(r'^secret_version\s*=\s*"[1-9][0-9]*"', text, re.M)
