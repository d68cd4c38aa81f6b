# Shared names and derived values. Everything that two resources must agree on
# is computed here once.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  # The sweep stops taking new batches after TIME_BUDGET_S seconds and
  # publishes its continuation while budget_reserve_s seconds remain before the
  # function timeout. Derived in this one place so the two cannot drift.
  time_budget_s = var.timeout_seconds - var.budget_reserve_s

  scheduler_region = coalesce(var.scheduler_region, var.region)

  # Google-managed service agents of this project (they exist once the
  # corresponding API is enabled).
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  # The bucket Cloud Functions (2nd gen) copies a function's source into, per region.
  gcf_sources_bucket = "projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-${var.region}"

  # The nightly trigger body, exactly {"kind":"nightly"}.
  nightly_message = jsonencode({ kind = "nightly" })

  # The running code's identity in every log line: by default a hash of the deployed sources
  # (source_version.tf), which changes with the code only.
  service_version = coalesce(var.service_version, substr(local.source_sha256, 0, 12))

  # App settings, always set. SUPABASE_URL is added only in the service-role
  # key mode: the app rejects a SUPABASE_URL without its key (settings.py).
  base_env = {
    CONTINUATION_TOPIC   = google_pubsub_topic.sweep.id
    TIME_BUDGET_S        = tostring(local.time_budget_s)
    BATCH_SIZE           = tostring(var.batch_size)
    REMINDER_DAYS        = var.reminder_days
    ORG_TIMEZONE         = var.org_timezone
    GOOGLE_CLOUD_PROJECT = var.project_id
    SERVICE_VERSION      = local.service_version
  }
  optional_env = var.secret_env_var_name == "SUPABASE_SERVICE_ROLE_KEY" ? { SUPABASE_URL = trimsuffix(var.supabase_url, "/") } : {}
}
