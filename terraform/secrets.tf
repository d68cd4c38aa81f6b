# The database credential (Supabase service-role key or a Postgres URL).
# Terraform creates only the empty container and who may read it: the value is
# added out of band with `gcloud secrets versions add` so it never appears in
# a tfvars file, the plan, or the Terraform state.
resource "google_secret_manager_secret" "db" {
  # Google-managed encryption: a CMEK key ring for one credential would add a
  # KMS lifecycle and IAM of its own; access is limited to the function's
  # service account (iam.tf) and every access is in the Data Access logs
  # when those are enabled for Secret Manager.
  secret_id = var.secret_id

  # Stored only in the function's region (EU data residency).
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.apis]
}
