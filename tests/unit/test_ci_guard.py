"""CI cannot skip in silence: with CI=true every skip fails the run (a test's, a fixture's, a module's
while collected), `.ci/run` sets CI=true itself, and optional packages are imported, not skipped."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

SKIPPING = '''
import pytest
{module}

def test_skips_as_it_runs():
    pytest.skip("a missing thing")

@pytest.mark.skipif(True, reason="a marker")
def test_skipped_by_a_marker():
    pass

def test_runs():
    pass
'''


def _pytest(folder, ci: bool):
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(REPO)} | ({"CI": "true"} if ci else {})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                           "-rs", str(folder)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["", 'pytest.importorskip("no_such_module_here")'], ids=["tests", "module"])
def test_every_skip_fails_on_ci(module, tmp_path):
    (tmp_path / "test_skipping.py").write_text(SKIPPING.format(module=module))
    here = _pytest(tmp_path, ci=False)
    assert here.returncode in (0, 5) and "skipped" in here.stdout, here.stdout   # 5: the module skipped whole
    ci = _pytest(tmp_path, ci=True)
    assert ci.returncode != 0, ci.stdout
    assert "skipped on CI, where every test must run" in ci.stdout
    assert not re.search(r"\d+ skipped", ci.stdout.splitlines()[-1]), ci.stdout


def test_ci_run_sets_ci_itself():
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    exports = [i for i, line in enumerate(lines) if line.strip() == "export CI=true"]
    runs = [i for i, line in enumerate(lines) if "scripts/test.sh" in line and not line.lstrip().startswith("#")]
    assert exports and runs and exports[0] < runs[0]


def test_no_test_skips_for_a_package_requirements_installs():
    """faiss, onnxruntime, prefect_dask... are in requirements.txt: a test imports them (a missing one fails)."""
    offenders = [f"{p.relative_to(REPO)}: {line.strip()}" for p in (REPO / "tests").rglob("*.py")
                 for line in p.read_text().splitlines() if "importorskip(" in line and p.name != "test_ci_guard.py"]
    assert not offenders, offenders


def test_a_unit_test_cannot_start_a_prefect_api(tmp_path):
    """The `unit` marker's promise is kept by tests/conftest.py, not by hope."""
    (tmp_path / "unit").mkdir()
    (tmp_path / "unit" / "test_heavy.py").write_text("def test_flow(prefect_harness):\n    pass\n")
    done = _pytest(tmp_path / "unit", ci=False)
    assert done.returncode != 0 and "unit tests promise no Prefect API" in done.stdout + done.stderr
