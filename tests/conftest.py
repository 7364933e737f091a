"""Fixtures for every kind of test; markers by folder (unit, models, pipeline, e2e).

With CI=true a test that skips because chromium or ../shared/data is missing fails the run:
CI has both, so such a skip would hide a broken set-up.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

KINDS = ("unit", "models", "pipeline", "e2e")
# Skips that mean "this machine lacks something CI always has".
CI_REQUIRED = ("../shared/data", "chromium", "chromedriver")


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).parts
        for kind in KINDS:
            if kind in parts:
                item.add_marker(getattr(pytest.mark, kind))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("CI") == "true" and rep.skipped:
        reason = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if any(word in reason for word in CI_REQUIRED):
            rep.outcome = "failed"
            rep.longrepr = f"skipped on CI, where it must run: {reason}"


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
