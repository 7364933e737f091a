#!/usr/bin/env bash
# Set up and run the tests. `--fast` runs the unit tests only, one pytest worker per core (pytest-xdist);
# other arguments go to pytest. The full run stays serial: its servers and flows share ports and a Prefect home.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=()
for a in "$@"; do
  if [ "$a" = "--fast" ]; then args+=(tests/unit -m unit -n auto --dist worksteal); else args+=("$a"); fi
done
exec .venv/bin/python -m pytest -q -p no:cacheprovider "${args[@]}"
