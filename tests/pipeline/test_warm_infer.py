"""The warm worker (flows/warm_infer.py) against a real Prefect API: 50 asks in a row all answer, none
waits past its deadline, no request leaves a warning in the worker's log; without a worker, ask stops at
its deadline with one clear line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO


@pytest.fixture
def warm_worker(prefect_harness, demo_lit, tmp_path):
    """`python -m flows.warm_infer serve` on the harness's API; (data dir, log path)."""
    from prefect.settings import PREFECT_API_URL
    data = tmp_path / "data"
    shutil.copytree(demo_lit.data_dir / "embeddings", data / "embeddings")
    log = tmp_path / "worker.log"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "SHOEFIND_DATA": str(data),
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "flows.warm_infer", "serve"], cwd=REPO, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    yield data, log
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_fifty_asks_in_a_row_all_answer(warm_worker, demo_lit):
    from flows.warm_infer import ask
    data, log = warm_worker
    shoes = sorted(p for p in demo_lit.catalog.iterdir() if p.is_dir())[:10]
    answer, _ = ask([shoes[0] / "photo-00.png"], demo_lit.catalog, data, str(demo_lit.model), timeout=300)  # cold
    assert answer["answers"][0]["error"] is None
    seconds = []
    for i in range(50):
        shoe = shoes[i % len(shoes)]
        answer, took = ask([shoe / f"photo-{i % 10:02d}.png"], demo_lit.catalog, data, str(demo_lit.model),
                           timeout=60)
        a = answer["answers"][0]
        assert a["error"] is None and a["catalog_shoe"]["shoe"] == shoe.name.rsplit("_", 1)[-1], a
        assert a["not_in_catalog"] is False
        seconds.append(took)
    said = log.read_text()
    assert said.count("Finished in state Completed") >= 51
    assert "UserWarning" not in said and "without a flow run id" not in said, said[-3000:]
    assert sorted(seconds)[len(seconds) // 2] < 5, seconds      # warm: the median answer well under 5 s
    # a request the worker cannot answer comes back as its error, and the worker keeps serving
    from shoefind.errors import UserError
    with pytest.raises(UserError, match="does not exist"):
        ask([shoes[0] / "photo-00.png"], demo_lit.catalog.parent / "no-such-catalog", data, str(demo_lit.model),
            timeout=60)
    answer, _ = ask([shoes[1] / "photo-00.png"], demo_lit.catalog, data, str(demo_lit.model), timeout=60)
    assert answer["answers"][0]["error"] is None


def test_ask_without_a_worker_stops_at_its_deadline(prefect_harness, demo_lit, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.warm_infer import AskTimeout, ask
    photo = next(demo_lit.catalog.glob("*/photo-00.png"))
    start = time.perf_counter()
    with pytest.raises(AskTimeout, match="no warm worker took the request") as refused:
        ask([photo], demo_lit.catalog, tmp_path / "data", str(demo_lit.model), timeout=3)
    assert time.perf_counter() - start < 15
    run_id = str(refused.value).split("task run ")[1].split(" ")[0]
    with get_client(sync_client=True) as client:      # cancelled: a worker started later does not answer it
        assert client.read_task_run(run_id).state.is_cancelled()


def test_ask_command_says_one_line_and_exits_2_at_its_deadline(prefect_harness, demo_lit, tmp_path):
    from prefect.settings import PREFECT_API_URL
    photo = next(demo_lit.catalog.glob("*/photo-00.png"))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "flows.warm_infer", "ask", str(photo), "--dataset",
                           str(demo_lit.catalog), "--data-dir", str(tmp_path / "data"), "--timeout", "2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no answer within 2 s" in errors[0] and "flows.warm_infer serve" in errors[0]
    assert "Traceback" not in done.stderr
