# The function's source archive: main.py, requirements.txt and the certexpiry/
# package, nothing else. It is an allow-list (explicit files plus one package
# tree) rather than the repo root minus excludes, so tests/, bench/, .venv/,
# .git/, terraform/ or any file added to the repo later can never leak into
# the upload. Byte-code caches and hidden files inside the package are
# dropped by the regex below.

locals {
  # terraform/ sits next to main.py, requirements.txt and certexpiry/.
  repo_root = abspath("${path.module}/..")

  source_top_level_files = ["main.py", "requirements.txt"]
  source_package_glob    = "certexpiry/**"
  # Paths matching this (RE2) are left out: __pycache__/, hidden files or
  # directories (.mypy_cache, .DS_Store, ...) and compiled byte code.
  source_exclude_regex = "(^|/)(__pycache__|\\.[^/]+)(/|$)|\\.py[cod]$"

  source_files = sort(concat(
    local.source_top_level_files,
    [
      for f in fileset(local.repo_root, local.source_package_glob) : f
      if length(regexall(local.source_exclude_regex, f)) == 0
    ],
  ))
}
