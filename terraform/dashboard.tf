# One dashboard so ops can look rather than read logs; its JSON is local.dashboard_json
# (dashboard_layout.tf).
resource "google_monitoring_dashboard" "sweep" {
  dashboard_json = local.dashboard_json

  depends_on = [time_sleep.metrics_visible]
}
