# Provider and Terraform versions. The exact provider builds are pinned by
# .terraform.lock.hcl, which `terraform init` writes: commit it after the
# first init so every later plan uses the same provider binaries.
terraform {
  # Lifecycle preconditions need 1.2+; 1.5 is the oldest release still
  # supported upstream. Checked here with 1.11.
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x has everything used here (cloudfunctions2 build_config.service_account,
      # PromQL alert conditions, default_labels). Bump deliberately, after
      # reading the provider's major-version upgrade guide.
      version = "~> 6.14"
    }
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
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
