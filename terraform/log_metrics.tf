# What each log-based metric reads from the function's log: its filter, label extractors and
# value extractor, in one map that needs no provider to evaluate. monitoring.tf builds the
# google_logging_metric resources from it, and tests/terraform/test_log_metrics.py renders it
# with `terraform console` and evaluates every filter and extractor against the lines a real
# run of the function writes (and the platform's request logs of its HTTP answers).

locals {
  # Log lines of this function: a 2nd gen function runs as a Cloud Run service of the same
  # name and its stdout JSON lands in jsonPayload (severity is lifted into the entry).
  function_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.function_name}\""

  # Cloud Run's own request log: one entry per HTTP request, at ERROR for every 5xx and for a
  # request the platform aborted. Two kinds are never an error of their own:
  #   - the function's own 503 (RUN_BUSY at INFO, or after an app ERROR line that is already
  #     counted): the function answered, so the entry has no payload;
  #   - a 429 "no available instance": every instance is busy (a duplicate delivery while a
  #     segment runs); Pub/Sub retries it like a 503. A message that keeps failing this way is
  #     caught by the stuck-message alert (monitoring.tf).
  # A 503 the platform made itself (an instance that failed to start, a broken connection)
  # carries the platform's explanation in textPayload and is counted, like a 500 (crash) or
  # 504 (timeout), with an empty error_code.
  not_an_error_request = "log_id(\"run.googleapis.com/requests\") AND (httpRequest.status=429 OR (httpRequest.status=503 AND NOT textPayload:*))"

  metric_prefix = replace(var.function_name, "-", "_")

  code_filter = { for code in ["RUN_COMPLETED", "MISSED_AUTO_PAUSE", "NIGHTS_MISSED", "OUTBOX_BACKLOG"] :
    code => "${local.function_log_filter} AND jsonPayload.error_code=\"${code}\""
  }

  # The end-of-run monitoring line: MISSED_AUTO_PAUSE or MONITORING_CLEAN, one per run, both
  # with context.missed_pause_count (RUN_COMPLETED does not carry it).
  monitoring_line_filter = "${local.function_log_filter} AND (jsonPayload.error_code=\"MISSED_AUTO_PAUSE\" OR jsonPayload.error_code=\"MONITORING_CLEAN\")"

  error_code_label = { error_code = "EXTRACT(jsonPayload.error_code)" }

  # kind: counter (INT64, one per matching line) or distribution (value_extractor's number).
  log_metrics = {
    errors = {
      name             = "${local.metric_prefix}_errors"
      description      = "ERROR log lines of the nightly sweep by error_code, and platform errors (crash, timeout, failed start) but not the request log of the function's own 503 or of a 429 (all instances busy)."
      filter           = "${local.function_log_filter} AND severity>=ERROR AND NOT (${local.not_an_error_request})"
      label_extractors = local.error_code_label
      value_extractor  = null
      unit             = "1"
    }
    events = {
      name             = "${local.metric_prefix}_events"
      description      = "Every structured log line of the nightly sweep (each carries an error_code: RUN_COMPLETED, BATCH_DONE, ...), by error_code."
      filter           = "${local.function_log_filter} AND jsonPayload.error_code:*"
      label_extractors = local.error_code_label
      value_extractor  = null
      unit             = "1"
    }
    missed_pause = {
      name             = "${local.metric_prefix}_missed_auto_pause"
      description      = "MISSED_AUTO_PAUSE log lines: a run ended with certifications that should have been paused and were not."
      filter           = local.code_filter.MISSED_AUTO_PAUSE
      label_extractors = {}
      value_extractor  = null
      unit             = "1"
    }
    nights_missed = {
      name             = "${local.metric_prefix}_nights_missed"
      description      = "NIGHTS_MISSED log lines: a run found organisation-local nights before it without any run."
      filter           = local.code_filter.NIGHTS_MISSED
      label_extractors = {}
      value_extractor  = null
      unit             = "1"
    }
    run_completed = {
      name             = "${local.metric_prefix}_run_completed"
      description      = "RUN_COMPLETED log lines: one per finished nightly run."
      filter           = local.code_filter.RUN_COMPLETED
      label_extractors = {}
      value_extractor  = null
      unit             = "1"
    }
    duration_ms = {
      name             = "${local.metric_prefix}_run_duration_ms"
      description      = "Wall-clock duration of a whole nightly run (all segments), from RUN_COMPLETED."
      filter           = local.code_filter.RUN_COMPLETED
      label_extractors = {}
      value_extractor  = "EXTRACT(jsonPayload.context.duration_ms)"
      unit             = "ms"
    }
    segments = {
      name             = "${local.metric_prefix}_run_segments"
      description      = "Number of function invocations (segments) a nightly run needed, from RUN_COMPLETED."
      filter           = local.code_filter.RUN_COMPLETED
      label_extractors = {}
      value_extractor  = "EXTRACT(jsonPayload.context.segments)"
      unit             = "1"
    }
    reminders = {
      name             = "${local.metric_prefix}_reminders_queued"
      description      = "Reminders queued by a nightly run, from RUN_COMPLETED."
      filter           = local.code_filter.RUN_COMPLETED
      label_extractors = {}
      value_extractor  = "EXTRACT(jsonPayload.context.reminders_queued)"
      unit             = "1"
    }
    paused = {
      name             = "${local.metric_prefix}_certifications_paused"
      description      = "Certifications auto-paused by a nightly run, from RUN_COMPLETED."
      filter           = local.code_filter.RUN_COMPLETED
      label_extractors = {}
      value_extractor  = "EXTRACT(jsonPayload.context.certifications_paused)"
      unit             = "1"
    }
    missed_count = {
      name             = "${local.metric_prefix}_missed_pause_count"
      description      = "Certifications a nightly run should have paused but did not, from the run's MISSED_AUTO_PAUSE or MONITORING_CLEAN line."
      filter           = local.monitoring_line_filter
      label_extractors = {}
      value_extractor  = "EXTRACT(jsonPayload.context.missed_pause_count)"
      unit             = "1"
    }
    # The outbox backlog at the end of a night (OUTBOX_BACKLOG, INFO, one per run): the age of
    # the oldest message the app's sender has not acknowledged, 0 when nothing waits. A line
    # whose context lacks the key (withheld by the log's allow-list) records no value at all.
    outbox_oldest_age = {
      name             = "${local.metric_prefix}_outbox_oldest_age"
      description      = "Age in seconds of the oldest undelivered outbox message at the end of a nightly run (0 when nothing waits), from OUTBOX_BACKLOG: how far behind the app's sender is."
      filter           = local.code_filter.OUTBOX_BACKLOG
      label_extractors = {}
      value_extractor  = "EXTRACT(jsonPayload.context.outbox_oldest_age_s)"
      unit             = "s"
    }
  }

  counter_metrics      = { for k, m in local.log_metrics : k => m if m.value_extractor == null }
  distribution_metrics = { for k, m in local.log_metrics : k => m if m.value_extractor != null }

  metric_names = { for k, m in local.log_metrics : k => m.name }

  # Eventarc names the trigger's subscription eventarc-<region>-<trigger>-sub-<n> and the
  # trigger <function>-<n>; it is not a Terraform resource. The stuck-message alert and the
  # dashboard find it by this pattern; docs/deploy.md (Smoke check) lists the subscriptions
  # it matches after a deploy and expects exactly one (output trigger_subscription_regex).
  trigger_subscription_regex = "eventarc-${var.region}-${var.function_name}-.*"

  # The Cloud Monitoring filter of each log-based metric's time series.
  user_metric_filter = { for k, name in local.metric_names :
    k => "metric.type=\"logging.googleapis.com/user/${name}\" AND resource.type=\"cloud_run_revision\""
  }
}

# Alerts on the function's own lines: a threshold > 0 on a log-based counter over 5 minutes.
#   missed_auto_pause: a certification past its expiry was not paused (CRITICAL);
#   errors: any ERROR line (one incident per error_code) or platform crash, timeout or failed
#     instance start (empty error_code);
#   nights_missed: the job's own check of the nights before tonight (NIGHTS_MISSED): a paused
#     or failing scheduler job, or no deploy, for a night or more (also in cron_audit_log).
locals {
  log_alerts = {
    missed_auto_pause = {
      display_name = "certexpiry: missed auto-pause"
      severity     = "CRITICAL"
      metric       = "missed_pause"
      condition    = "MISSED_AUTO_PAUSE logged"
      group_by     = []
      content      = "A certification past its expiry was not auto-paused by the nightly sweep. Find the lines: `${local.log_metrics.missed_pause.filter}`. See docs/deploy.md (Alerting)."
    }
    errors = {
      display_name = "certexpiry: nightly sweep logged an ERROR"
      severity     = "ERROR"
      metric       = "errors"
      condition    = "severity>=ERROR log lines, by error_code"
      group_by     = ["metric.label.error_code"]
      content      = "The nightly sweep logged an ERROR (the incident names the error_code; empty for a crash, timeout or failed start reported by the platform). Logs: `${local.log_metrics.errors.filter}`."
    }
    nights_missed = {
      display_name = "certexpiry: nights without a run"
      severity     = "WARNING"
      metric       = "nights_missed"
      condition    = "NIGHTS_MISSED logged"
      group_by     = []
      content      = "Tonight's run found nights before it without any run (the line's context.details lists them). Check the scheduler job and the deploys of those nights; tonight's sweep already caught up. Lines: `${local.log_metrics.nights_missed.filter}`."
    }
  }
}
