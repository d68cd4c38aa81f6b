# The repository the function's image is pushed to. Without build_config.docker_repository
# Cloud Functions pushes to a gcf-artifacts repository it creates on the first deploy, which
# nothing can be granted on beforehand, so the build account needed a project-level role
# (roles/run.builder) that reads every repository and bucket of the project. A repository
# Terraform manages gets a repository-level grant instead (iam.tf).
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:The repository holds only the function's image built from this public-by-design source archive (no data, no secrets); Google-managed encryption is enough and a CMEK key ring would be the only KMS resource in the project.
  location      = var.region
  repository_id = "${var.function_name}-images"
  format        = "DOCKER"
  description   = "Images of the certexpiry nightly sweep function, built by Cloud Build from the source archive."

  # Each deploy adds an image (and a build cache image). Keep the newest ten for rollbacks
  # (docs/deploy.md, Rolling back) and delete anything older than 30 days beyond those.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}
