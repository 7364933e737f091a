#!/usr/bin/env bash
# The main job: set up, start a local Prefect server (embedded SQLite), register every
# deployment of prefect.yaml, say what is missing on this machine, and serve them with a
# process worker. Ctrl-C stops the worker and the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export SHOEFIND_REPO=$PWD
# The worker runs the flows with these settings (export SHOEFIND_* before up.sh to change them).
export SHOEFIND_DATA=${SHOEFIND_DATA:-$PWD/data}
export DO_NOT_TRACK=1 PREFECT_CLI_PROMPT=false
export PREFECT_HOME=${PREFECT_HOME:-$PWD/.prefect}
PORT=${SHOEFIND_PREFECT_PORT:-4200}
export PREFECT_API_URL=http://127.0.0.1:$PORT/api
export PREFECT_SERVER_ANALYTICS_ENABLED=false PREFECT_UI_ENABLED=${PREFECT_UI_ENABLED:-true}
PATH=$PWD/.venv/bin:$PATH
mkdir -p "$PREFECT_HOME" data

server_pid=""
if curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1; then
  echo "up: a Prefect server already answers on 127.0.0.1:$PORT; using it"
else
  echo "up: starting the Prefect server on http://127.0.0.1:$PORT (log: $PREFECT_HOME/server.log)"
  prefect server start --host 127.0.0.1 --port "$PORT" >"$PREFECT_HOME/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 120); do
    curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { echo "up: the server exited; see $PREFECT_HOME/server.log" >&2; exit 1; }
    sleep 1
  done
fi
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; exit 0' INT TERM EXIT

prefect work-pool inspect shoefind >/dev/null 2>&1 || prefect work-pool create shoefind --type process >/dev/null
echo "up: registering the deployments of prefect.yaml"
prefect --no-prompt deploy --all >"$PREFECT_HOME/deploy.log" 2>&1 || { cat "$PREFECT_HOME/deploy.log"; exit 1; }
prefect deployment ls

echo
echo "up: what this machine has"
doctor=$(shoefind doctor --json 2>/dev/null || echo '{}')
python - "$doctor" <<'PY'
import json, sys
checks = json.loads(sys.argv[1] or "{}")
for check in checks.values():
    print(("  ok       " if check["status"] == "ok" else f"  {check['status'].upper():<9}") + check["message"])
PY
echo "up: the worker runs with $(env | grep '^SHOEFIND_' | grep -v '^SHOEFIND_REPO=' | sort | tr '\n' ' ')"

# A first run that succeeds here: the working dataset (else the shared photos next to the checkout) with
# the CLIP weights when doctor found them, else the offline image backbone's few-shot comparison.
hint=(deployment run evaluate/working-dataset)
if ! python -c 'import json,sys; sys.exit(json.loads(sys.argv[1]).get("model", {}).get("status") != "ok")' "$doctor"; then
  hint+=(-p model=efficientnet-lite0 -p method=fewshot -p shots=4)
fi
if ! python -c 'import json,sys; sys.exit(json.loads(sys.argv[1]).get("dataset", {}).get("status") != "ok")' "$doctor"; then
  if [ -d "$PWD/../shared/data/nike-silhouettes" ]; then
    hint+=(-p "dataset=$(cd "$PWD/../shared/data/nike-silhouettes" && pwd)")
  else
    echo "up: put labeled photo folders in $SHOEFIND_DATA/images (Brand_Top_Color_Sole_Name/photo.jpg) first"
  fi
fi
echo
echo "up: serving; try:  PREFECT_API_URL=$PREFECT_API_URL .venv/bin/prefect ${hint[*]} --watch"
if ! python -c 'import json,sys; sys.exit(json.loads(sys.argv[1]).get("model", {}).get("status") != "ok")' "$doctor"; then
  echo "up: no CLIP weights here? .venv/bin/shoefind demo data/demo  draws a demo catalog and trains an offline model"
  echo "    that knows it (minutes); then:  .venv/bin/prefect deployment run evaluate/working-dataset \\"
  echo "      -p dataset=$PWD/data/demo/catalog -p model=$PWD/data/demo/model/demo.lit.pt --watch"
fi
prefect worker start --pool shoefind --type process
