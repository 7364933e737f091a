"""Fixtures for every kind of test; markers by folder (unit, models, pipeline, e2e).

With CI=true (`.ci/run` sets it) every skip fails the run, whether a test skips as it runs or a
module skips while it is collected: CI has everything (../shared/data, chromium, chromedriver, the
optional packages of requirements.txt), so a skip there means a broken set-up, not a test to ignore.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

KINDS = ("unit", "models", "pipeline", "e2e")
# What the `unit` marker promises never to start (pyproject.toml): a Prefect API, a browser, a trained model.
NOT_IN_UNIT_TESTS = ("prefect_harness", "demo_lit", "nike_lit")


def on_ci() -> bool:
    return os.environ.get("CI") == "true"


def pytest_collection_modifyitems(config, items):
    misplaced = []
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in KINDS:
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))
        if "unit" in parts and (heavy := set(getattr(item, "fixturenames", ())) & set(NOT_IN_UNIT_TESTS)):
            misplaced.append(f"{item.nodeid} uses {', '.join(sorted(heavy))}")
    if misplaced:
        raise pytest.UsageError("unit tests promise no Prefect API, browser or trained model (pyproject.toml "
                                "markers): move these to tests/models, tests/pipeline or tests/e2e: "
                                + "; ".join(misplaced))


def _skip_reason(rep) -> str:
    return str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if on_ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = _skip_reason(rep)
        rep.outcome = "failed"
        rep.longrepr = f"skipped on CI, where every test must run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module that skips while collected (pytest.skip(allow_module_level=True), importorskip)."""
    outcome = yield
    rep = outcome.get_result()
    if on_ci() and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = f"{collector.nodeid} skipped on CI, where every test must run: {_skip_reason(rep)}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real photos); tests using it skip on a clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """Path of a tiny randomly initialised CLIP checkpoint (real clip.model.CLIP)."""
    from shoefind.encoders.families.tiny import make_tiny
    return str(make_tiny(tmp_path_factory.mktemp("model") / "tiny.pt", seed=0))


@pytest.fixture(scope="session")
def demo_lit():
    """The demo model (LiT over efficientnet-lite0 on the demo catalog) with its catalog and split;
    trained once per machine and code version (tests/helpers/trained_models.py)."""
    from tests.helpers.trained_models import demo_model
    return demo_model()


@pytest.fixture(scope="session")
def nike_lit(shared_data):
    """LiT over efficientnet-lite0 on ../shared/data/nike-silhouettes, held out by colourway (trained once)."""
    from tests.helpers.trained_models import nike_lit_model
    return nike_lit_model(shared_data)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("SHOEFIND_DATA", str(d))
    return d


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API (SQLite) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness
    with prefect_test_harness(server_startup_timeout=120):
        yield
