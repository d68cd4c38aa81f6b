# Nightly trigger: publishes {"kind":"nightly"} to the sweep topic.
resource "google_cloud_scheduler_job" "nightly" {
  name        = "${var.function_name}-nightly"
  region      = local.scheduler_region
  description = "Starts the certexpiry nightly sweep."
  schedule    = var.schedule
  time_zone   = var.time_zone

  pubsub_target {
    topic_name = google_pubsub_topic.sweep.id
    data       = base64encode(local.nightly_message)
    attributes = {
      kind = "nightly"
    }
  }

  # Retries cover a failed publish only; once the message is on the topic,
  # Pub/Sub's own retries (RETRY_POLICY_RETRY) take over.
  retry_config {
    retry_count          = var.scheduler_retry_count
    min_backoff_duration = "30s"
    max_backoff_duration = "300s"
    max_doublings        = 3
    max_retry_duration   = "1800s"
  }

  depends_on = [google_project_service.apis]
}
