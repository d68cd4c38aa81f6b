# Service accounts and every role they get. No primitive roles
# (owner/editor/viewer); each grant is on the narrowest resource that the API
# allows, and says why it exists.

# --- Runtime identity of the function -------------------------------------

resource "google_service_account" "function" {
  account_id   = "${var.function_name}-fn"
  display_name = "certexpiry nightly sweep (runtime)"
  description  = "Identity the nightly_sweep function runs as: reads its DB secret, publishes its own continuation messages."

  depends_on = [google_project_service.apis]
}

# Continuation: before its timeout the sweep republishes a resume message to
# the same topic. Publisher on that one topic only.
resource "google_pubsub_topic_iam_member" "function_publisher" {
  topic  = google_pubsub_topic.sweep.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.function.email}"
}

# The Supabase service-role key / DATABASE_URL, mounted as an environment
# variable: accessor on that one secret only.
resource "google_secret_manager_secret_iam_member" "function_secret_accessor" {
  secret_id = google_secret_manager_secret.db.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function.email}"
}

# Logging: the app writes JSON lines to stdout, which Cloud Run collects without any role,
# so this is off by default (grant_log_writer). Only an app that logs through the Cloud
# Logging API (google-cloud-logging's CloudLoggingHandler) needs logging.logEntries.create,
# which exists only at project level. logWriter can write entries and nothing else.
resource "google_project_iam_member" "function_log_writer" {
  count = var.grant_log_writer ? 1 : 0

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.function.email}"
}

# --- Identity of the Eventarc trigger -------------------------------------

resource "google_service_account" "trigger" {
  account_id   = "${var.function_name}-evt"
  display_name = "certexpiry nightly sweep (Eventarc trigger)"
  description  = "Identity Eventarc uses to push Pub/Sub messages to the nightly_sweep function."

  depends_on = [google_project_service.apis]
}

# Eventarc delivers each message as an authenticated HTTP request to the
# function's Cloud Run service: invoker on that service only. (Pub/Sub-sourced
# triggers do not need roles/eventarc.eventReceiver.)
resource "google_cloud_run_service_iam_member" "trigger_invoker" {
  project  = var.project_id
  location = google_cloudfunctions2_function.sweep.location
  service  = google_cloudfunctions2_function.sweep.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# Old projects only (Pub/Sub service agent enabled on or before 2021-04-08):
# the agent must mint OIDC tokens for the trigger account to authenticate the
# push. Granted on that one service account, not project-wide.
resource "google_service_account_iam_member" "pubsub_token_creator" {
  count = var.grant_pubsub_token_creator ? 1 : 0

  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"
}

# --- Identity of the build -------------------------------------------------

# Cloud Build turns the source archive into the function's image. Without a
# build service account of its own it runs as the project's default compute
# account, which often holds the Editor basic role; this one holds only what the build needs.
resource "google_service_account" "build" {
  account_id   = "${var.function_name}-bld"
  display_name = "certexpiry nightly sweep (Cloud Build)"
  description  = "Identity Cloud Build uses to build the nightly_sweep function image."

  depends_on = [google_project_service.apis]
}

# What the build needs, each on the narrowest resource the API allows (instead of
# roles/run.builder at project level, which reads every bucket, the Terraform state bucket
# included, and every Artifact Registry repository of the project):
#   - push the image to the function's own repository (artifacts.tf);
#   - roles/storage.objectAdmin, the storage role Google's pages on the build service account
#     of 2nd gen functions list (read the source, store build objects; objectViewer can leave
#     the first build without a permission it needs), on exactly two buckets: this stack's
#     source bucket (a bucket-level grant) and the gcf-v2-sources bucket Cloud Functions
#     copies the source into (created by the service, so granted by a condition on its name
#     rather than on the bucket); no other bucket of the project, the Terraform state's
#     included;
#   - write its build log (logging.logEntries.create exists only at project level).
resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = google_artifact_registry_repository.functions.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# The source archive in this stack's bucket: objectAdmin on this one bucket only. Its
# versioning keeps any archive the build could overwrite or delete as a noncurrent version.
resource "google_storage_bucket_iam_member" "build_source_objects" {
  bucket = google_storage_bucket.source.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.build.email}"
}

# Cloud Functions' own copy of the source: bucket gcf-v2-sources-<project number>-<region>,
# created by the service on the first deploy. Project-level, conditioned on that bucket (and
# its objects) only.
resource "google_project_iam_member" "build_gcf_sources_objects" {
  project = var.project_id
  role    = "roles/storage.objectAdmin"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-sources bucket only"
    description = "Cloud Functions' copy of the function source in ${var.region}; no other bucket."
    expression  = "resource.name == \"${local.gcf_sources_bucket}\" || resource.name.startsWith(\"${local.gcf_sources_bucket}/\")"
  }
}

# The build's log: Cloud Build writes it to Cloud Logging as the build account.
resource "google_project_iam_member" "build_logs_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# IAM grants take a while to propagate; a build started at once can fail with a permission
# error on the first apply. The provider's own cloudfunctions2 example waits 60 s.
resource "time_sleep" "build_grants" {
  create_duration = "60s"

  depends_on = [
    google_artifact_registry_repository_iam_member.build_writer,
    google_storage_bucket_iam_member.build_source_objects,
    google_project_iam_member.build_gcf_sources_objects,
    google_project_iam_member.build_logs_writer,
  ]
}

# --- Cloud Scheduler --------------------------------------------------------
# No grant: the scheduler job publishes as the Cloud Scheduler service agent,
# whose Google-granted role (roles/cloudscheduler.serviceAgent) already holds
# pubsub.topics.publish. Do not remove that role from the agent.
