#!/usr/bin/env bash
# Set everything up: Debian's chromium + chromedriver, a venv with the pinned requirements.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian chromium and chromium-driver"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup: chromium/chromedriver missing; run as root or: sudo apt-get install chromium chromium-driver" >&2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing requirements (torch comes from the local disk; the first time takes a few minutes)"
  # this machine's pip config names local package folders that may be absent: pip warns per package
  pip_quiet() { .venv/bin/pip install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
  pip_quiet 'setuptools<81' wheel
  pip_quiet -r requirements.txt
  pip_quiet --no-deps -e .
  echo "$want" > "$stamp"
fi
echo "setup: ready (.venv)"
