output "function_uri" {
  description = "HTTPS URI of the function's Cloud Run service (internal ingress only: reachable from Eventarc/Pub/Sub, not from the internet)."
  value       = google_cloudfunctions2_function.sweep.service_config[0].uri
}

output "function_name" {
  description = "Name of the Cloud Function (and of its Cloud Run service)."
  value       = google_cloudfunctions2_function.sweep.name
}

output "sweep_topic" {
  description = "Full ID of the sweep topic (the trigger's topic and CONTINUATION_TOPIC): projects/P/topics/T."
  value       = google_pubsub_topic.sweep.id
}

output "scheduler_job" {
  description = "Full ID of the nightly Cloud Scheduler job."
  value       = google_cloud_scheduler_job.nightly.id
}

output "eventarc_trigger" {
  description = "Resource name of the Eventarc trigger Cloud Functions created for the function (its subscription is where the dead-letter policy is attached)."
  value       = google_cloudfunctions2_function.sweep.event_trigger[0].trigger
}

output "trigger_subscription_regex" {
  description = "Pattern (RE2, whole name) by which the stuck-message alert and the dashboard find the Eventarc trigger's subscription; after a deploy exactly one subscription must match it (docs/deploy.md, Smoke check)."
  value       = local.trigger_subscription_regex
}

output "dead_letter_topic" {
  description = "Full ID of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription" {
  description = "Pull subscription that holds dead-lettered messages for inspection."
  value       = google_pubsub_subscription.dead_letter_hold.id
}

output "secret_id" {
  description = "Secret Manager secret to put the credential in (gcloud secrets versions add)."
  value       = google_secret_manager_secret.db.secret_id
}

output "service_accounts" {
  description = "Emails of the function runtime, Eventarc trigger and Cloud Build service accounts."
  value = {
    function = google_service_account.function.email
    trigger  = google_service_account.trigger.email
    build    = google_service_account.build.email
  }
}

output "time_budget_s" {
  description = "TIME_BUDGET_S given to the function (timeout_seconds - budget_reserve_s)."
  value       = local.time_budget_s
}

output "manual_run_command" {
  description = "Command that starts a nightly run by hand."
  value       = "gcloud pubsub topics publish ${google_pubsub_topic.sweep.id} --message='${local.nightly_message}' --attribute=kind=nightly"
}

output "dashboard_id" {
  description = "ID of the Cloud Monitoring dashboard."
  value       = google_monitoring_dashboard.sweep.id
}

output "artifact_repository" {
  description = "Artifact Registry repository the function's images are pushed to (build_config.docker_repository)."
  value       = google_artifact_registry_repository.functions.id
}
