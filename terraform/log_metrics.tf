# What each log-based metric reads from the function's log: its filter, label extractors and
# value extractor, in one map that needs no provider to evaluate. monitoring.tf builds the
# google_logging_metric resources from it, and tests/terraform/test_log_metrics.py renders it
# with `terraform console` and evaluates every filter and extractor against the lines a real
# run of the function writes (and the platform's request logs of its HTTP answers).

locals {
  # Log lines of this function: a 2nd gen function runs as a Cloud Run service of the same
  # name and its stdout JSON lands in jsonPayload (severity is lifted into the entry).
  function_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${var.function_name}\""

  # Cloud Run's own request log: one entry per HTTP request, at ERROR for every 5xx. The
  # function answers 503 on purpose (RUN_BUSY at INFO, and after an app ERROR line that is
  # already counted), so a 503 request entry is never an error of its own; a 500 (crash) or
  # 504 (timeout) request entry is, and has no app line.
  intentional_503 = "log_id(\"run.googleapis.com/requests\") AND httpRequest.status=503"

  metric_prefix = replace(var.function_name, "-", "_")

  code_filter = { for code in ["RUN_COMPLETED", "MISSED_AUTO_PAUSE", "NIGHTS_MISSED"] :
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
      description      = "ERROR log lines of the nightly sweep by error_code, and platform errors (crash, timeout) but not the request log of an intentional 503."
      filter           = "${local.function_log_filter} AND severity>=ERROR AND NOT (${local.intentional_503})"
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
  }

  counter_metrics      = { for k, m in local.log_metrics : k => m if m.value_extractor == null }
  distribution_metrics = { for k, m in local.log_metrics : k => m if m.value_extractor != null }
}
