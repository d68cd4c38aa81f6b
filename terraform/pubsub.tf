# One topic carries both the nightly trigger (from Cloud Scheduler) and the
# sweep's own continuation messages; the function's Eventarc trigger
# subscribes to it.
resource "google_pubsub_topic" "sweep" {
  #checkov:skip=CKV_GCP_83:Messages hold only {"kind":...} and a resume cursor (no personal data or secrets); Google-managed encryption at rest is enough and a CMEK key ring would be the only KMS resource in the project.
  name = var.function_name

  # Keep messages (also acked ones) so that a subscription can be seeked back
  # to replay a night: `gcloud pubsub subscriptions seek SUB --time=...`.
  message_retention_duration = var.topic_message_retention

  depends_on = [google_project_service.apis]
}

# Dead-letter path. Eventarc creates and owns the push subscription of the
# function's trigger, and neither the Cloud Functions nor the Eventarc API
# lets Terraform set a dead-letter policy on it. So Terraform provides the
# destination (topic + a pull subscription that holds what lands there, with
# the Pub/Sub service agent allowed to publish to it), and docs/deploy.md has
# the one gcloud command that attaches it to the Eventarc subscription. The
# alert on the trigger subscription's oldest unacked message age
# (monitoring.tf) works with or without that step.
resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Same payloads as the sweep topic (no personal data or secrets); Google-managed encryption is enough.
  name                       = "${var.function_name}-dead-letter"
  message_retention_duration = var.dead_letter_retention

  depends_on = [google_project_service.apis]
}

resource "google_pubsub_subscription" "dead_letter_hold" {
  name  = "${var.function_name}-dead-letter-hold"
  topic = google_pubsub_topic.dead_letter.id

  # Nobody consumes this automatically: messages wait here for a human
  # (gcloud pubsub subscriptions pull) and the dead-letter alert fires.
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = true
  ack_deadline_seconds       = 60

  expiration_policy {
    ttl = "" # never expire for inactivity
  }
}

# Pub/Sub forwards dead letters as its own service agent: it needs publish on
# the dead-letter topic (and subscriber on the source subscription, granted by
# the documented gcloud step because that subscription is Eventarc's).
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.pubsub_service_agent}"
}
