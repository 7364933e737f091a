#!/usr/bin/env bash
# Set up and run the tests. Extra arguments go to pytest (e.g. -k crawl).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
