"""The main job as users meet it: scripts/up.sh brings up a real Prefect server on 127.0.0.1,
registers every deployment of prefect.yaml and serves them with a worker; then
`prefect deployment run evaluate/working-dataset` completes."""
import json
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


def test_deployment_names_never_look_alike():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = [d["name"] for d in spec["deployments"]]
    assert len(set(names)) == len(names), names


def test_the_run_form_explains_itself(main_job):
    """The evaluate deployment's parameter schema, as the UI's run form reads it: every field described,
    choices as enums, no field typed None."""
    env, _ = main_job
    code = ("import asyncio, json\nfrom prefect.client.orchestration import get_client\n"
            "async def main():\n    async with get_client() as c:\n"
            "        d = await c.read_deployment_by_name('evaluate/working-dataset')\n"
            "        print(json.dumps(d.parameter_openapi_schema))\nasyncio.run(main())\n")
    done = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    props = json.loads(done.stdout.strip().splitlines()[-1])["properties"]
    assert {"dataset", "model", "method", "runtime", "device", "batch_size"} <= set(props)
    assert all(p.get("description") for p in props.values()), [k for k, p in props.items() if not p.get("description")]
    assert "bf16" in props["runtime"]["enum"] and props["device"]["enum"] == ["auto", "cpu", "cuda"]
    assert props["batch_size"]["minimum"] == 1
    assert "null" not in json.dumps(props), "a field typed None shows 'Property is type None' in the form"


def test_up_prints_a_first_run_hint_with_the_worker_settings(main_job):
    env, home = main_job
    text = (home / "up.log").read_text()
    assert "the worker runs with SHOEFIND_DATA=" in text
    hint = next(line for line in text.splitlines() if "up: serving; try:" in line)
    assert "deployment run evaluate/working-dataset" in hint
    if "MISSING  model" in text:           # no CLIP weights here: the offline backbone's few-shot path
        assert "model=efficientnet-lite0" in hint and "method=fewshot" in hint


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
    res = prefect(env, "deployment", "run", "infer/ad-hoc", "-p", f"image={photo}",
                  "-p", f"dataset={ds}", "-p", f"model={tiny_model}", "-p", f"data_dir={tmp_path / 'data'}",
                  "-p", "change=same brand but blue", "--watch", "--watch-timeout", "300")
    assert "Completed" in res.stdout + res.stderr, res.stdout[-2000:] + res.stderr[-2000:]


def test_the_first_run_hint_runs_as_printed(main_job):
    """The command up.sh suggests, typed as printed, completes on this machine."""
    import shlex
    env, home = main_job
    line = next(line for line in (home / "up.log").read_text().splitlines() if "up: serving; try:" in line)
    command = shlex.split(line.split("try:", 1)[1])
    assert command[0].startswith("PREFECT_API_URL=") and command[1] == ".venv/bin/prefect", command
    run_env = {**env, "COLUMNS": "250", command[0].split("=", 1)[0]: command[0].split("=", 1)[1]}
    res = subprocess.run([str(REPO / command[1]), *command[2:], "--watch-timeout", "900"], env=run_env, cwd=REPO,
                         capture_output=True, text=True, timeout=1000)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Completed" in out and "Validation failed" not in out, out[-3000:]


def test_infer_through_the_api_prints_the_answer(main_job, tiny_model, tmp_path):
    """With PREFECT_API_URL exported (as the README says), `shoefind infer` from outside the checkout
    triggers the infer deployment, waits for it, and prints the answer the in-process path prints."""
    env, _ = main_job
    ds = make_labeled_dataset(tmp_path / "ds")
    photo = next(ds.rglob("*.jpg"))
    args = [str(REPO / ".venv" / "bin" / "shoefind"), "infer", str(photo), "--dataset", str(ds), "--model", tiny_model,
            "--data-dir", str(tmp_path / "data"), "--json"]
    # outside the checkout: flows/ cannot be imported (a PYTHONPATH pointing at the checkout would let the
    # command run the flow itself), so the deployment is triggered and its worker answers
    outside = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    local_env = {k: v for k, v in outside.items() if k != "PREFECT_API_URL"}
    here = subprocess.run(args, env=local_env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    there = subprocess.run(args, env=outside, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert here.returncode == 0, here.stderr[-2000:]
    assert there.returncode == 0 and "running the deployment infer/ad-hoc" in there.stderr, there.stderr[-3000:]
    local, remote = json.loads(here.stdout), json.loads(there.stdout)
    assert [a["shoe"]["shoe"] for a in remote["answers"]] == [a["shoe"]["shoe"] for a in local["answers"]]
    assert remote["answers"][0]["top_shoes"] == local["answers"][0]["top_shoes"]
