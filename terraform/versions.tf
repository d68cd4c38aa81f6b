# Provider and Terraform versions. The exact provider builds are pinned by
# .terraform.lock.hcl, which `terraform init` writes: commit it after the
# first init so every later plan uses the same provider binaries.
terraform {
  # A variable validation that reads another variable (schedule against time_zone) needs
  # 1.9+; check blocks need 1.5+. Checked here with 1.11.
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.14 has everything used here (cloudfunctions2 build_config.service_account and
      # docker_repository, PromQL alert conditions with disable_metric_validation (6.13),
      # storage object generation, default_labels). Bump deliberately, after
      # reading the provider's major-version upgrade guide.
      version = "~> 6.14"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    # time_sleep: waits for log-based metrics to become usable in alert policies and for the
    # build account's grants to propagate (monitoring.tf, iam.tf).
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource that supports labels gets these (plus its own).
  default_labels = merge(var.labels, {
    app        = "certexpiry"
    managed-by = "terraform"
  })
}
