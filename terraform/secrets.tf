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

  # The credential outlives any plan: a change that would replace the secret (its secret_id,
  # its replica region) or a terraform destroy would delete it with every version, and the
  # next night could not start. Terraform refuses such a plan instead; to really delete it,
  # remove this line in a reviewed change first. (The resource's deletion_protection argument
  # came in a later 6.x release than 6.14, the floor of the ~> 6.14 pin in versions.tf, so
  # it is not used here: every provider version the pin allows must accept this file.)
  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_project_service.apis]
}
