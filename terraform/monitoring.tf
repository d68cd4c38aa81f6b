# Log-based metrics from the function's JSON log lines (defined in log_metrics.tf), and the
# alert policies built on them. Metric names use only [a-z_] so their PromQL names are simply
# logging_googleapis_com:user_<name>.

locals {
  promql_run_completed = "logging_googleapis_com:user_${local.metric_names.run_completed}{monitored_resource=\"cloud_run_revision\"}"
  promql_lookback      = "${var.completion_lookback_hours}h"

  # True (one sample) only during the deadline UTC hour and only when the
  # lookback window holds no RUN_COMPLETED sample, or only zero-valued ones.
  run_not_completed_promql = join(" ", [
    "(absent_over_time(${local.promql_run_completed}[${local.promql_lookback}])",
    "or (sum(sum_over_time(${local.promql_run_completed}[${local.promql_lookback}])) < 1))",
    "and on() (hour() == ${var.completion_deadline_utc_hour})",
  ])

  # A threshold condition on a sparse log-based metric has no data between nights, so its
  # incident closes only by auto_close. 30 minutes (the shortest Cloud Monitoring accepts)
  # closes it long before the next night, so an error that recurs the next night opens a new
  # incident and notifies again instead of landing in the still-open one.
  alert_auto_close = "1800s"
}

# --- Log-based metrics ------------------------------------------------------

resource "google_logging_metric" "counter" {
  for_each = local.counter_metrics

  name        = each.value.name
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = each.value.unit
    dynamic "labels" {
      for_each = each.value.label_extractors
      content {
        key         = labels.key
        value_type  = "STRING"
        description = "jsonPayload.${labels.key} of the log line (empty for platform entries such as a crash's request log)."
      }
    }
  }
  label_extractors = each.value.label_extractors

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "distribution" {
  for_each = local.distribution_metrics

  name        = each.value.name
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = each.value.unit
  }
  value_extractor = each.value.value_extractor

  # 0, 1, 2, 4, ... 2^30: covers counts of rows, durations in ms and ages in s alike.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 2
      scale              = 1
    }
  }

  depends_on = [google_project_service.apis]
}

# A log-based metric is not usable in an alert policy at once: creating the policy in the same
# apply fails with "404 Cannot find metric(s) ... could take up to 10 minutes to become
# available" (hashicorp/terraform-provider-google#11102, open). The policies wait for this,
# which runs again only when a metric is replaced. The function's first build runs meanwhile.
resource "time_sleep" "metrics_visible" {
  create_duration = "${var.metric_visibility_wait_s}s"

  triggers = {
    metrics = join(",", sort(concat(
      [for m in google_logging_metric.counter : m.id],
      [for m in google_logging_metric.distribution : m.id],
    )))
  }
}

# Without a notification channel every policy below opens incidents in the console and pages
# nobody. A warning, not an error: a first deploy may add its channels later.
check "alerts_notify_someone" {
  assert {
    condition     = length(var.notification_channels) > 0
    error_message = "notification_channels is empty: the alert policies will open incidents in the Cloud Console only and notify nobody. Set at least one channel (docs/deploy.md, Alerting)."
  }
}

# --- Alert policies --------------------------------------------------------

# The alerts on the function's own lines (local.log_alerts) are defined in log_metrics.tf.
resource "google_monitoring_alert_policy" "log_lines" {
  for_each = local.log_alerts

  display_name          = each.value.display_name
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels

  conditions {
    display_name = each.value.condition
    condition_threshold {
      filter          = local.user_metric_filter[each.value.metric]
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = each.value.group_by
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = each.value.content
  }

  depends_on = [time_sleep.metrics_visible]
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
      # The metric has no point until the first night; without this the API may refuse a
      # query naming a metric it does not know yet (provider >= 6.13).
      disable_metric_validation = true
    }
  }

  alert_strategy {
    auto_close = local.alert_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The nightly sweep has not logged RUN_COMPLETED by ${format("%02d", var.completion_deadline_utc_hour)}:00 UTC. Check the scheduler job ran, the trigger subscription's backlog, and `${local.function_log_filter}` for the night. Trigger a run by hand: docs/deploy.md."
  }

  depends_on = [time_sleep.metrics_visible]
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
    auto_close = local.alert_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A message on the sweep topic has failed and been retried for over ${var.max_message_age_s} s. Pub/Sub drops it when the subscription's retention ends unless the dead-letter policy is attached (docs/deploy.md, Dead letters). Look at the function's ERROR logs."
  }
}

# "The app's sender stopped": at the end of a night the oldest outbox message it has not
# acknowledged is older than outbox_stall_threshold_s (docs/operations.md, "The outbox and the
# app's sender"). The metric is a distribution with one value a night (the OUTBOX_BACKLOG line).
# ALIGN_MAX is defined for numeric values only, and a percentile of the exponential buckets can
# be off by up to a factor of 2, while the mean of one value is that value: the mean per 5
# minutes (the night's line), then the max across revisions. Checked once a night, when the
# line is written; the incident closes after 30 minutes like the others and opens again the
# next night while the backlog stays old.
resource "google_monitoring_alert_policy" "outbox_stalled" {
  display_name          = "certexpiry: the app's sender stopped (outbox message older than ${var.outbox_stall_threshold_s} s)"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "oldest undelivered outbox message at the end of a night (OUTBOX_BACKLOG)"
    condition_threshold {
      filter          = local.user_metric_filter.outbox_oldest_age
      comparison      = "COMPARISON_GT"
      threshold_value = var.outbox_stall_threshold_s
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_MEAN"
        cross_series_reducer = "REDUCE_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = local.alert_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = "The app's sender stopped: at the end of tonight's run the oldest message in the outbox it has not acknowledged was older than ${var.outbox_stall_threshold_s} s, so mentors are not getting their reminders and pause notices. Check the sender (its schedule, its own logs, its service-role key; is it calling claim_outbox and acknowledge_outbox?), then `certexpiry check` for the backlog. Runbook: docs/operations.md, \"The outbox and the app's sender\". Lines: `${local.log_metrics.outbox_oldest_age.filter}`."
  }

  depends_on = [time_sleep.metrics_visible]
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
    auto_close = local.alert_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A sweep message exhausted its delivery attempts. Inspect: `gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter_hold.name} --limit=10`; replay by publishing its data to the sweep topic after fixing the cause."
  }
}
