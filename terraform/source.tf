# Upload of the function's source archive. Which files go in is decided in
# source_files.tf (an allow-list, no provider needed to evaluate it).

data "archive_file" "source" {
  type        = "zip"
  output_path = "${path.module}/.build/${var.function_name}-source.zip"

  # Files are read as UTF-8 text (file()), which is what a Python package is;
  # a binary data file in certexpiry/ would fail the plan loudly, not silently.
  dynamic "source" {
    for_each = toset(local.source_files)
    content {
      filename = source.value
      content  = file("${local.repo_root}/${source.value}")
    }
  }
}

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Access logs of a deploy-artifact bucket that only Terraform and Cloud Build touch add a second bucket (itself needing logs) for no audit value; Admin Activity audit logs already record writes.
  name     = "${var.project_id}-${var.function_name}-src"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_source_bucket

  # Replaced archives stay as noncurrent versions for a month: a rollback can
  # rebuild from the exact bytes that ran before.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_storage_bucket_object" "source" {
  # Content-addressed name: a code change is a new object name, which is what
  # makes the function resource redeploy.
  name         = "${var.function_name}/source-${data.archive_file.source.output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.source.output_path
  content_type = "application/zip"
}
