#!/usr/bin/env bash
# Static security scan of terraform/ with checkov, in its own virtualenv.
#
# checkov pins many libraries (pydantic, boto3, networkx, ...) at versions
# that conflict with the app's requirements-dev.txt, so it never goes into
# .venv: it lives in .venv-checkov at the repo root (git-ignored, rebuilt on
# demand). The venv is refreshed only when the pinned version is missing, so
# repeat runs cost the scan alone.
#
# Usage: scripts/checkov.sh [--install-only | extra checkov args]
#   --install-only  install (or check) the venv and stop: scripts/test.sh runs this in the
#                   background, then the scan, while the tests run
#   CHECKOV_VENV=/path  use another venv location
#   PYTHON=python3.12   interpreter used to create the venv
# Exit status: checkov's (non-zero when any check fails), or pip's/venv's
# when the install itself fails.
set -euo pipefail

CHECKOV_VERSION="3.3.30"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHECKOV_VENV:-$ROOT/.venv-checkov}"
PY="${PYTHON:-python3}"

installed_version() {
  "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("checkov"))' 2>/dev/null || true
}

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "checkov.sh: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
# The venv ignores itself, so it never shows up in git status.
[[ -f "$VENV/.gitignore" ]] || echo '*' > "$VENV/.gitignore"

# pip, quietly; drops only the "Location ... is ignored" noise that a
# find-links entry without this package prints per requirement, and keeps
# every other warning and error. pip's exit status is kept (pipefail).
pip_install() {
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

if [[ "$(installed_version)" != "$CHECKOV_VERSION" ]]; then
  echo "checkov.sh: installing checkov==$CHECKOV_VERSION into $VENV" >&2
  start=$SECONDS
  pip_install --upgrade pip
  pip_install "checkov==$CHECKOV_VERSION"
  echo "checkov.sh: install took $((SECONDS - start)) s" >&2
fi

[[ "${1:-}" == "--install-only" ]] && exit 0

cd "$ROOT"
start=$SECONDS
set +e
# --skip-download: no Bridgecrew/Prisma platform calls (no API key, and the
# network here reaches package registries only). Skipped checks are declared
# inline in the .tf files with "#checkov:skip=CKV_...:reason", next to the
# resource they apply to, so each exception is reviewed with the code.
"$VENV/bin/checkov" -d terraform --framework terraform --quiet --compact \
  --skip-download "$@"
rc=$?
set -e
echo "checkov.sh: scan took $((SECONDS - start)) s, exit $rc" >&2
exit "$rc"
