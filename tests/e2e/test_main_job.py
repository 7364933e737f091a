"""The main job as users meet it: scripts/up.sh brings up a real Prefect server on 127.0.0.1,
registers every deployment of prefect.yaml and serves them with a worker; then
`prefect deployment run evaluate/working-dataset` completes."""
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, make_labeled_dataset

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), SHOEFIND_PREFECT_PORT=str(port), PREFECT_UI_ENABLED="false")
    log = open(home / "up.log", "w")
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "up.sh")], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    text = ""
    while time.time() < deadline and proc.poll() is None:
        text = (home / "up.log").read_text()
        if "started!" in text:
            break
        time.sleep(1)
    if "started!" not in text:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("main job did not come up:\n" + (home / "up.log").read_text()[-3000:])
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    yield env, home
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def prefect(env, *args, timeout=400):
    return subprocess.run([str(REPO / ".venv" / "bin" / "prefect"), *args], env={**env, "COLUMNS": "250"}, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_every_deployment_is_registered(main_job):
    env, home = main_job
    listed = prefect(env, "deployment", "ls").stdout
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for dep in spec["deployments"]:
        flow_name = _flow_name(dep["entrypoint"])
        assert f"{flow_name}/{dep['name']}" in listed, listed


def test_main_job_says_what_is_missing(main_job):
    env, home = main_job
    from shoefind.cli.preflight import _browser, _model
    text = (home / "up.log").read_text()
    # doctor's verdicts, worked out here in the same environment: the log must hold those very
    # lines (ok / WARNING / MISSING with what to do), whichever the machine has
    assert "what this machine has" in text
    for status, message in (_model(None), _browser()):
        assert status + message in text, text[-3000:]


def test_deployment_run_evaluate_completes(main_job, tiny_model, tmp_path):
    env, _ = main_job
    ds = make_labeled_dataset(tmp_path / "ds")
    res = prefect(env, "deployment", "run", "evaluate/working-dataset", "-p", f"dataset={ds}",
                  "-p", f"model={tiny_model}", "-p", f"data_dir={tmp_path / 'data'}", "--watch",
                  "--watch-timeout", "300")
    assert "Completed" in res.stdout + res.stderr, res.stdout[-2000:] + res.stderr[-2000:]
    reports = list((tmp_path / "data" / "runs").glob("*-evaluate-ds/report.md"))
    assert len(reports) == 1


def _flow_name(entrypoint: str) -> str:
    path, func = entrypoint.split(":")
    src = (REPO / path).read_text()
    before = src[: src.index(f"def {func}(")]
    return before[before.rindex("@flow(name=\"") + len("@flow(name=\""):].split("\"")[0]


def test_deployment_run_infer_answers_a_photo(main_job, tiny_model, tmp_path):
    env, _ = main_job
    ds = make_labeled_dataset(tmp_path / "ds")
    photo = next(ds.rglob("*.jpg"))
    res = prefect(env, "deployment", "run", "infer/working-dataset", "-p", f"image={photo}",
                  "-p", f"dataset={ds}", "-p", f"model={tiny_model}", "-p", f"data_dir={tmp_path / 'data'}",
                  "-p", "change=same brand but blue", "--watch", "--watch-timeout", "300")
    assert "Completed" in res.stdout + res.stderr, res.stdout[-2000:] + res.stderr[-2000:]
