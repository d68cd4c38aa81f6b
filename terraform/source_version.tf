# The default SERVICE_VERSION (main.tf): the deployed code's identity. In a file of its own,
# provider-free, so tests/terraform/test_terraform_cli.py renders it over a sample tree.

locals {
  # A hash of exactly what the archive holds: each file's name and the SHA-256 of its bytes.
  # It changes when the deployed code changes and with nothing else (no commit SHA, no zip
  # timestamps or permissions), so SERVICE_VERSION (main.tf), which is part of the function's
  # configuration, rolls a new revision only with the code.
  source_sha256 = sha256(join("", [
    for name in local.source_files : "${name}\n${filesha256("${local.repo_root}/${name}")}\n"
  ]))
}
