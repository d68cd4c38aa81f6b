# The dashboard's JSON (dashboard.tf creates it): runs, duration, segments, reminders, pauses,
# missed pauses, missed nights, errors and the trigger backlog. Provider-free, so
# tests/terraform/test_dashboard.py renders it with `terraform console`.
#
# Written as the Monitoring API gives it back, so that a second plan shows no diff (the
# provider compares the JSON it reads with this text, ignoring only etag and name): the API
# adds chartOptions.mode = COLOR to every xyChart, so each has it here; and it omits every
# field whose value is a default (proto3 JSON: 0, "", false, [] and {}), so no field here holds
# one: a tile at the left edge or top row leaves xPos or yPos out instead of writing 0.

locals {
  # A chart of one metric: per-hour value, summed across revisions.
  dashboard_chart = {
    for k, c in {
      runs        = { title = "Runs completed (per hour)", metric = "run_completed", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", plot = "STACKED_BAR" }
      duration    = { title = "Run duration, ms (mean per hour)", metric = "duration_ms", aligner = "ALIGN_MEAN", reducer = "REDUCE_MEAN", plot = "LINE" }
      segments    = { title = "Segments per run (mean per hour)", metric = "segments", aligner = "ALIGN_MEAN", reducer = "REDUCE_MEAN", plot = "LINE" }
      reminders   = { title = "Reminders queued per run", metric = "reminders", aligner = "ALIGN_MEAN", reducer = "REDUCE_MEAN", plot = "STACKED_BAR" }
      paused      = { title = "Certifications auto-paused per run", metric = "paused", aligner = "ALIGN_MEAN", reducer = "REDUCE_MEAN", plot = "STACKED_BAR" }
      missed      = { title = "Missed auto-pauses (MISSED_AUTO_PAUSE lines per hour)", metric = "missed_pause", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", plot = "STACKED_BAR" }
      missed_runs = { title = "Missed pause count per run (end-of-run monitoring line)", metric = "missed_count", aligner = "ALIGN_MEAN", reducer = "REDUCE_MEAN", plot = "STACKED_BAR" }
      nights      = { title = "Runs that found missed nights (NIGHTS_MISSED lines per hour)", metric = "nights_missed", aligner = "ALIGN_SUM", reducer = "REDUCE_SUM", plot = "STACKED_BAR" }
      } : k => {
      title = c.title
      xyChart = {
        dataSets = [{
          plotType = c.plot
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = local.user_metric_filter[c.metric]
              aggregation = {
                alignmentPeriod    = "3600s"
                perSeriesAligner   = c.aligner
                crossSeriesReducer = c.reducer
              }
            }
          }
        }]
        yAxis        = { scale = "LINEAR" }
        chartOptions = { mode = "COLOR" }
      }
    }
  }

  # Charts grouped by error_code.
  dashboard_by_code = {
    for k, c in {
      errors = { title = "ERROR log lines by error_code (per hour)", metric = "errors" }
      events = { title = "All events by error_code (per hour)", metric = "events" }
      } : k => {
      title = c.title
      xyChart = {
        dataSets = [{
          plotType = "STACKED_BAR"
          timeSeriesQuery = {
            timeSeriesFilter = {
              filter = local.user_metric_filter[c.metric]
              aggregation = {
                alignmentPeriod    = "3600s"
                perSeriesAligner   = "ALIGN_SUM"
                crossSeriesReducer = "REDUCE_SUM"
                groupByFields      = ["metric.label.error_code"]
              }
            }
          }
        }]
        yAxis        = { scale = "LINEAR" }
        chartOptions = { mode = "COLOR" }
      }
    }
  }

  dashboard_backlog = {
    title = "Trigger subscription: oldest unacked message age (s)"
    xyChart = {
      dataSets = [{
        plotType = "LINE"
        timeSeriesQuery = {
          timeSeriesFilter = {
            filter = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=monitoring.regex.full_match(\"${local.trigger_subscription_regex}\")"
            aggregation = {
              alignmentPeriod    = "300s"
              perSeriesAligner   = "ALIGN_MAX"
              crossSeriesReducer = "REDUCE_MAX"
            }
          }
        }
      }]
      yAxis        = { scale = "LINEAR" }
      chartOptions = { mode = "COLOR" }
    }
  }

  # Reading order, two charts per row (mosaic grid is 48 columns wide).
  dashboard_widgets = [
    local.dashboard_chart.runs,
    local.dashboard_chart.duration,
    local.dashboard_chart.segments,
    local.dashboard_chart.reminders,
    local.dashboard_chart.paused,
    local.dashboard_chart.missed,
    local.dashboard_chart.missed_runs,
    local.dashboard_chart.nights,
    local.dashboard_by_code.errors,
    local.dashboard_by_code.events,
    local.dashboard_backlog,
  ]

  dashboard_json = jsonencode({
    displayName = "certexpiry nightly sweep"
    mosaicLayout = {
      columns = 48
      tiles = [
        for i, w in local.dashboard_widgets : merge(
          { width = 24, height = 16, widget = w },
          i % 2 == 0 ? {} : { xPos = 24 },
          i < 2 ? {} : { yPos = floor(i / 2) * 16 },
        )
      ]
    }
  })
}
