#!/usr/bin/env bash
# Set up and run the tests. `--fast` runs the unit tests only; other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
for a in "$@"; do
  if [ "$a" = "--fast" ]; then args+=(tests/unit -m unit); else args+=("$a"); fi
done
exec .venv/bin/python -m pytest -q -p no:cacheprovider "${args[@]}"
