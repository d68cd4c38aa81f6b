# The nightly sweep: a 2nd gen Cloud Function (a Cloud Run service built by
# Cloud Build from the source archive) fed by an Eventarc trigger on the sweep
# topic.
resource "google_cloudfunctions2_function" "sweep" {
  name        = var.function_name
  location    = var.region
  description = "certexpiry nightly sweep: queues expiry reminders, auto-pauses expired certifications, resumes itself via Pub/Sub before its timeout."

  build_config {
    runtime         = var.runtime
    entry_point     = "nightly_sweep"
    service_account = google_service_account.build.id
    # The image goes to the repository this stack manages (artifacts.tf), where the build
    # account may write; not to a gcf-artifacts repository created on first deploy.
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
        # The exact upload this apply made: a later overwrite of the object (versioned
        # bucket) cannot change what a rebuild of this revision reads.
        generation = google_storage_bucket_object.source.generation
      }
    }
  }

  service_config {
    timeout_seconds    = var.timeout_seconds
    available_memory   = var.memory
    max_instance_count = var.max_instance_count
    min_instance_count = 0
    # One sweep segment per instance at a time: segments are sequential.
    max_instance_request_concurrency = 1

    # Only Eventarc/Pub/Sub (internal sources of this project) can reach it.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.function.email

    environment_variables = merge(local.base_env, local.optional_env)

    # The credential comes from Secret Manager at instance start; it is never
    # a plain environment variable, a Terraform variable, or in the state.
    secret_environment_variables {
      key        = var.secret_env_var_name
      project_id = var.project_id
      secret     = google_secret_manager_secret.db.secret_id
      version    = var.secret_version
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.sweep.id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
  }

  lifecycle {
    precondition {
      condition     = local.time_budget_s > 0 && local.time_budget_s < var.timeout_seconds
      error_message = "TIME_BUDGET_S (timeout_seconds - budget_reserve_s) must be positive and below timeout_seconds: lower budget_reserve_s."
    }
    precondition {
      condition     = var.secret_env_var_name != "SUPABASE_SERVICE_ROLE_KEY" || var.supabase_url != ""
      error_message = "supabase_url is required when the secret is the SUPABASE_SERVICE_ROLE_KEY."
    }
    precondition {
      condition     = var.secret_env_var_name != "DATABASE_URL" || var.supabase_url == ""
      error_message = "Leave supabase_url empty with DATABASE_URL: the app refuses SUPABASE_URL without SUPABASE_SERVICE_ROLE_KEY."
    }
  }

  # The runtime identity must already be able to read the secret and publish
  # continuations when the first revision starts, and the build account's grants must have
  # propagated before the first build (time_sleep.build_grants).
  depends_on = [
    google_project_service.apis,
    google_pubsub_topic_iam_member.function_publisher,
    google_secret_manager_secret_iam_member.function_secret_accessor,
    time_sleep.build_grants,
  ]
}
