#!/usr/bin/env bash
# Create or refresh the project's virtualenv (.venv) from requirements-dev.txt.
# Re-installs only when a requirements file changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "venv: creating .venv with $("$PYTHON" --version 2>&1)" >&2
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-ops.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "venv: installing requirements-dev.txt (runtime, ops toolkit, test tools) into .venv;" \
    "the first time takes a minute or two" >&2
  started=$SECONDS
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  if [ -t 2 ]; then
    # On a terminal, one line that counts the seconds, so a long first install is not silence.
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt &
    pip_pid=$!
    while kill -0 "$pip_pid" 2>/dev/null; do
      printf '\r\033[Kvenv: installing... %s s' $((SECONDS - started)) >&2
      sleep 2
    done
    printf '\r\033[K' >&2
    wait "$pip_pid"
  else
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  fi
  echo "venv: installed in $((SECONDS - started)) s" >&2
  echo "$want" > "$stamp"
fi
