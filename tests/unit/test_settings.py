"""Settings read once: the environment is read in shoefind/settings.py only, every value is checked
there (a bad one is one line naming the variable), every field is read, and paths come from DataLayout."""
from __future__ import annotations

import ast
import re

import pytest

from tests.helpers import REPO
from tests.helpers.cli import shoefind_here

# Files that touch os.environ other than settings.py: each writes the environment for someone else
# to read, and may do only what it does now (the count of its os.environ uses).
WRITES_THE_ENVIRONMENT = {
    "shoefind/cli/main.py": (2, "--download is written as SHOEFIND_DOWNLOAD so flows and workers started "
                                "from this process see it; Prefect's telemetry is turned off for it and its children"),
    "shoefind/cli/execution.py": (1, "Prefect reads its settings from the environment: telemetry off before it is imported"),
    "shoefind/cli/infer.py": (1, "the environment of the Streamlit child of `shoefind web` (model, data, catalog)"),
    "shoefind/faults.py": (1, "the kill -9 tests' crash point reads SHOEFIND_CRASH_AT where the crash happens: a "
                              "test hook for one subprocess, never a setting anything depends on"),
    "shoefind/encoders/families/hub.py": (4, "HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are how huggingface_hub and transformers "
                                    "are told to stay offline while a model loads; restored after"),
}
ENVIRONMENT_WORDS = re.compile(r"\bos\.environ\b|\bos\.getenv\b|\bos\.putenv\b|\bos\.unsetenv\b|\bfrom os import\b.*\b(environ|getenv)\b")


def _library_files():
    for folder in ("shoefind", "flows", "tasks"):
        yield from sorted((REPO / folder).rglob("*.py"))


def test_only_settings_reads_the_environment():
    found = {}
    for path in _library_files():
        rel = path.relative_to(REPO).as_posix()
        if rel == "shoefind/settings.py":
            continue
        hits = [line.strip() for line in path.read_text().splitlines()
                if ENVIRONMENT_WORDS.search(line) and not line.lstrip().startswith("#")]
        if hits:
            found[rel] = hits
    unexpected = {rel: hits for rel, hits in found.items() if rel not in WRITES_THE_ENVIRONMENT}
    assert not unexpected, f"read the environment through shoefind.settings.current(), not here: {unexpected}"
    for rel, (count, _reason) in WRITES_THE_ENVIRONMENT.items():
        assert len(found.get(rel, [])) == count, (
            f"{rel}: {len(found.get(rel, []))} uses of os.environ where its allow-list entry names {count}: "
            f"{found.get(rel)}; a new read belongs in shoefind/settings.py, a gone one in this list")


def test_every_settings_field_is_read_somewhere():
    from dataclasses import fields

    from shoefind.settings import Settings
    text = "\n".join(p.read_text() for p in _library_files() if p.name != "settings.py")
    unread = [f.name for f in fields(Settings)
              if f.name not in ("data_dir", "rules_dir") and not re.search(rf"\.{f.name}\b|\"{f.name}\"", text)]
    assert not unread, f"Settings fields nobody reads: {unread}"


def test_settings_choices_are_the_libraries():
    from shoefind.encoders.runtimes import choose as runtimes
    from shoefind.settings import DEVICES, RUNTIMES
    assert RUNTIMES == runtimes.RUNTIMES and DEVICES == runtimes.DEVICES
    from shoefind.stages import request
    assert RUNTIMES == request.RUNTIMES and DEVICES == request.DEVICES


@pytest.mark.parametrize("name, value", [
    ("SHOEFIND_ANN_THRESHOLD", "abc"), ("SHOEFIND_ANN_THRESHOLD", "0"), ("SHOEFIND_ANN_THRESHOLD", "-5"),
    ("SHOEFIND_BF16", "maybe"), ("SHOEFIND_DOWNLOAD", "perhaps"), ("SHOEFIND_OFFLINE", "2"),
    ("SHOEFIND_RUNTIME", "tensorrt"), ("SHOEFIND_DEVICE", "gpu"), ("PREFECT_API_URL", "localhost:4200"),
])
def test_a_bad_environment_value_is_one_line_naming_it(name, value, monkeypatch, capfd, tmp_path):
    monkeypatch.setenv(name, value)
    dataset = tmp_path / "ds" / "Nike_High_Red_Plain Sole_Test"
    dataset.mkdir(parents=True)
    code, out, err = shoefind_here(capfd, "table", dataset.parent, "--data-dir", tmp_path / "data")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and f"{name}={value!r}" in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "data" / "tables").exists()


def test_the_library_raises_the_same_error(monkeypatch):
    """Outside the CLI (flows, the web page) the first read of the settings says the same."""
    from shoefind.errors import UserError
    from shoefind.features.vector_index import ann_threshold
    monkeypatch.setenv("SHOEFIND_ANN_THRESHOLD", "abc")
    with pytest.raises(UserError, match="SHOEFIND_ANN_THRESHOLD='abc'"):
        ann_threshold()
    monkeypatch.setenv("SHOEFIND_ANN_THRESHOLD", "12")
    assert ann_threshold() == 12
    monkeypatch.delenv("SHOEFIND_ANN_THRESHOLD")
    from shoefind.features.vector_index import ANN_THRESHOLD
    assert ann_threshold() == ANN_THRESHOLD


def test_values_are_read_as_documented(tmp_path):
    from shoefind.settings import Settings
    s = Settings.from_env({"SHOEFIND_DATA": str(tmp_path), "SHOEFIND_BF16": "0", "SHOEFIND_DOWNLOAD": "yes",
                           "SHOEFIND_DEVICE": "CUDA:1", "HF_HOME": str(tmp_path / "hf"),
                           "SHOEFIND_WEB_DATASET": str(tmp_path / "cat"), "PREFECT_API_URL": "http://127.0.0.1:4200/api"})
    assert (s.data_dir, s.bf16, s.download, s.device) == (tmp_path.resolve(), False, True, "cuda:1")
    assert s.hf_hub_cache == tmp_path / "hf" / "hub" and s.web_dataset == (tmp_path / "cat").resolve()
    assert s.prefect_api_url == "http://127.0.0.1:4200/api" and s.ann_threshold is None
    assert Settings.from_env({"SHOEFIND_DOWNLOAD": "1", "SHOEFIND_OFFLINE": "1"}).download is False
    assert Settings.from_env({"HF_HUB_CACHE": str(tmp_path / "c")}).hf_hub_cache == tmp_path / "c"


def test_paths_under_the_data_folder_come_from_the_layout():
    """No module builds DATA/<folder> by hand: `x / "embeddings"` and the like are written in settings.py only
    (exports kept next to their weights, `checkpoint.parent / "onnx"`, are not under the data folder, nor are
    the folders inside one dataset's registry, `self.root / "models"` in shoefind/registry/store.py)."""
    names = {"images", "inbox", "crawl", "tables", "embeddings", "fidelity", "runs", "learned", "models", "onnx",
             "filter", "queue.sqlite", "demo", "registry"}
    offenders = []
    for path in _library_files():
        if path.name == "settings.py":
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and \
                    isinstance(node.right, ast.Constant) and node.right.value in names:
                segment = ast.get_source_segment(source, node) or ""
                inside_registry = path.name == "store.py" and path.parent.name == "registry" and \
                    segment.startswith("self.root")
                if not segment.startswith("checkpoint.parent") and not inside_registry:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {segment}")
    assert not offenders, "build these with shoefind.settings.DataLayout:\n" + "\n".join(offenders)


def test_every_variable_settings_reads_is_in_env_vars():
    """current() reads the environment again when one of ENV_VARS changes: a variable read but not listed
    would keep its first value for the life of the process."""
    from shoefind.settings import ENV_VARS
    source = (REPO / "shoefind" / "settings.py").read_text()
    read = set(re.findall(r"""env(?:\.get\(|\[|, )["']([A-Z_0-9]+)["']""", source))
    assert read and read <= set(ENV_VARS), sorted(read - set(ENV_VARS))
    assert "SHOEFIND_ANN_THRESHOLD" in read and "PREFECT_API_URL" in read
