# APIs the stack needs. disable_on_destroy = false: destroying this stack must
# not switch off APIs other workloads in the project may use.
locals {
  required_apis = [
    "artifactregistry.googleapis.com", # function images built by Cloud Build
    "cloudbuild.googleapis.com",       # builds the function from the source archive
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com", # data.google_project (project number)
    "cloudscheduler.googleapis.com",
    "eventarc.googleapis.com", # the function's Pub/Sub trigger
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com", # 2nd gen functions run on Cloud Run
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each = var.enable_apis ? toset(local.required_apis) : toset([])

  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
