# Log-based metrics from the function's JSON log lines, and the alert
# policies built on them. Metric names use only [a-z_] so their PromQL names
# are simply logging_googleapis_com:user_<name>.

locals {
  metric_prefix = replace(var.function_name, "-", "_")

  metric_names = {
    errors        = "${local.metric_prefix}_errors"
    events        = "${local.metric_prefix}_events"
    missed_pause  = "${local.metric_prefix}_missed_auto_pause"
    run_completed = "${local.metric_prefix}_run_completed"
    duration_ms   = "${local.metric_prefix}_run_duration_ms"
    segments      = "${local.metric_prefix}_run_segments"
    reminders     = "${local.metric_prefix}_reminders_queued"
    paused        = "${local.metric_prefix}_certifications_paused"
    missed_count  = "${local.metric_prefix}_missed_pause_count"
  }

  run_completed_filter = "${local.function_log_filter} AND jsonPayload.error_code=\"RUN_COMPLETED\""

  # Values logged in RUN_COMPLETED's context, one distribution metric each.
  run_context_metrics = {
    duration_ms  = { field = "duration_ms", unit = "ms", description = "Wall-clock duration of a whole nightly run (all segments), from RUN_COMPLETED." }
    segments     = { field = "segments", unit = "1", description = "Number of function invocations (segments) a nightly run needed, from RUN_COMPLETED." }
    reminders    = { field = "reminders_queued", unit = "1", description = "Reminders queued by a nightly run, from RUN_COMPLETED." }
    paused       = { field = "certifications_paused", unit = "1", description = "Certifications auto-paused by a nightly run, from RUN_COMPLETED." }
    missed_count = { field = "missed_pause_count", unit = "1", description = "Certifications a nightly run should have paused but did not, from RUN_COMPLETED." }
  }

  # Eventarc names the trigger's subscription eventarc-<region>-<trigger>-sub-<n>
  # and the trigger <function>-<n>; it is not a Terraform resource.
  trigger_subscription_regex = "eventarc-${var.region}-${var.function_name}-.*"

  promql_run_completed = "logging_googleapis_com:user_${local.metric_names.run_completed}{monitored_resource=\"cloud_run_revision\"}"
  promql_lookback      = "${var.completion_lookback_hours}h"

  # True (one sample) only during the deadline UTC hour and only when the
  # lookback window holds no RUN_COMPLETED sample, or only zero-valued ones.
  run_not_completed_promql = join(" ", [
    "(absent_over_time(${local.promql_run_completed}[${local.promql_lookback}])",
    "or (sum(sum_over_time(${local.promql_run_completed}[${local.promql_lookback}])) < 1))",
    "and on() (hour() == ${var.completion_deadline_utc_hour})",
  ])
}

# --- Log-based metrics ------------------------------------------------------

resource "google_logging_metric" "errors" {
  name        = local.metric_names.errors
  description = "Log lines of the nightly sweep with severity >= ERROR, by error_code."
  filter      = "${local.function_log_filter} AND severity>=ERROR"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "error_code"
      value_type  = "STRING"
      description = "jsonPayload.error_code of the log line (empty for platform errors such as crashes)."
    }
  }
  label_extractors = {
    error_code = "EXTRACT(jsonPayload.error_code)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "events" {
  name        = local.metric_names.events
  description = "Every structured log line of the nightly sweep that carries an error_code (RUN_COMPLETED, BATCH_DONE, CONTINUATION_PUBLISHED, ...), by error_code."
  filter      = "${local.function_log_filter} AND jsonPayload.error_code:*"

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "error_code"
      value_type = "STRING"
    }
  }
  label_extractors = {
    error_code = "EXTRACT(jsonPayload.error_code)"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "missed_auto_pause" {
  name        = local.metric_names.missed_pause
  description = "MISSED_AUTO_PAUSE log lines: a certification that should have been paused was not."
  filter      = "${local.function_log_filter} AND jsonPayload.error_code=\"MISSED_AUTO_PAUSE\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "run_completed" {
  name        = local.metric_names.run_completed
  description = "RUN_COMPLETED log lines: one per finished nightly run."
  filter      = local.run_completed_filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "run_context" {
  for_each = local.run_context_metrics

  name        = local.metric_names[each.key]
  description = each.value.description
  filter      = local.run_completed_filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = each.value.unit
  }
  value_extractor = "EXTRACT(jsonPayload.context.${each.value.field})"

  # 0, 1, 2, 4, ... 2^30: covers counts of rows and durations in ms alike.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.apis]
}

# --- Alert policies --------------------------------------------------------

resource "google_monitoring_alert_policy" "missed_auto_pause" {
  display_name          = "certexpiry: missed auto-pause"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "MISSED_AUTO_PAUSE logged"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.missed_auto_pause.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A certification past its expiry was not auto-paused by the nightly sweep. Find the lines: `${local.function_log_filter} AND jsonPayload.error_code=\"MISSED_AUTO_PAUSE\"`. See docs/deploy.md (Alerting)."
  }
}

resource "google_monitoring_alert_policy" "errors" {
  display_name          = "certexpiry: nightly sweep logged an ERROR"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "severity>=ERROR log lines, by error_code"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.error_code"]
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The nightly sweep logged an ERROR (the incident names the error_code). Logs: `${local.function_log_filter} AND severity>=ERROR`."
  }
}

# "Tonight's run has not logged RUN_COMPLETED by the deadline hour."
# Why PromQL: the RUN_COMPLETED metric gets one point per night, so a
# metric-absence condition (retest window at most 23.5 h) would either fire
# every day before the run or need a window longer than it allows, and a log
# match condition cannot see something that did NOT happen. PromQL can tie the
# check to the clock: during the UTC deadline hour, fire when the last
# completion_lookback_hours hold no RUN_COMPLETED sample (or only zeros).
# Log-based metrics write no point when no line matches, hence absent_over_time.
resource "google_monitoring_alert_policy" "run_not_completed" {
  display_name          = "certexpiry: nightly run not completed by ${format("%02d", var.completion_deadline_utc_hour)}:00 UTC"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "no RUN_COMPLETED in the last ${var.completion_lookback_hours} h at the deadline hour"
    condition_prometheus_query_language {
      query               = local.run_not_completed_promql
      duration            = "0s"
      evaluation_interval = "300s"
    }
  }

  alert_strategy {
    auto_close = "43200s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The nightly sweep has not logged RUN_COMPLETED by ${format("%02d", var.completion_deadline_utc_hour)}:00 UTC. Check the scheduler job ran, the trigger subscription's backlog, and `${local.function_log_filter}` for the night. Trigger a run by hand: docs/deploy.md."
  }

  depends_on = [google_logging_metric.run_completed]
}

# A message that keeps failing (retried by Pub/Sub with backoff) shows up as
# an ever older unacked message on the trigger's subscription.
resource "google_monitoring_alert_policy" "stuck_message" {
  display_name          = "certexpiry: sweep message retried for over ${var.max_message_age_s} s"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "oldest unacked message on the Eventarc subscription"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=monitoring.regex.full_match(\"${local.trigger_subscription_regex}\")"
      comparison      = "COMPARISON_GT"
      threshold_value = var.max_message_age_s
      duration        = "300s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A message on the sweep topic has failed and been retried for over ${var.max_message_age_s} s. Pub/Sub drops it when the subscription's retention ends unless the dead-letter policy is attached (docs/deploy.md, Dead letters). Look at the function's ERROR logs."
  }
}

resource "google_monitoring_alert_policy" "dead_letter" {
  display_name          = "certexpiry: message in the dead-letter subscription"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "undelivered messages in ${google_pubsub_subscription.dead_letter_hold.name}"
    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter_hold.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A sweep message exhausted its delivery attempts. Inspect: `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter_hold.name} --limit=10`; replay by publishing its data to the sweep topic after fixing the cause."
  }
}
