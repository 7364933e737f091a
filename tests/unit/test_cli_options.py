"""The CLI's shared options: bad values are refused while parsing (one line, exit 2), paths are checked
before anything heavy is imported, and light commands never import torch or prefect."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, make_labeled_dataset
from tests.helpers.cli import shoefind, shoefind_here


BAD = [
    (["embed", "--batch-size", "0"], "--batch-size"),
    (["embed", "--batch-size", "-5"], "--batch-size"),
    (["embed", "--threads", "-3"], "--threads"),
    (["infer", "x.jpg", "-k", "0"], "-k"),
    (["infer", "x.jpg", "-k", "-3"], "-k"),
    (["learn", "--n-ctx", "0"], "--n-ctx"),
    (["learn", "--n-ctx", "-2"], "--n-ctx"),
    (["learn", "--max-epochs", "0"], "--max-epochs"),
    (["review", "--port", "99999"], "--port"),
    (["embed", "--cluster", "host:notaport"], "host:notaport"),
    (["embed", "--cluster", "local:0"], "local:N"),
    (["embed", "--runtime", "tensorrt"], "onnx-int8"),
    (["embed", "--device", "tpu"], "cuda"),
    (["evaluate", "--task", "nope"], "zeroshot"),
    (["evaluate", "--shots", "0"], "--shots"),
    (["table", "--catalog", "/nonexistent/catalog.csv"], "does not exist"),
    (["filter", "--batch-size", "0"], "--batch-size"),
    (["nocommand"], "No such command"),
]


@pytest.mark.parametrize("args,names", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_option_values_exit_2_with_one_line(args, names, capfd):
    code, out, err = shoefind_here(capfd, *args)   # a fresh process: test_bad_option_in_a_new_process_is_one_line
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and names in lines[0], err
    assert "Traceback" not in err


def test_bad_option_in_a_new_process_is_one_line():
    code, out, err = shoefind("embed", "--runtime", "tensorrt")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "onnx-int8" in lines[0], err


def test_missing_paths_are_refused_before_any_model_loads(tmp_path):
    script = ("import sys\nfrom shoefind.cli.main import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
              "heavy = sorted(m for m in ('torch', 'clip', 'prefect') if m in sys.modules)\n"
              "print(code, ','.join(heavy))\n")
    for args in (["infer", tmp_path / "nope.jpg"], ["table", tmp_path / "nope"], ["embed", tmp_path / "nope"],
                 ["evaluate", "--dataset", tmp_path / "nope"], ["search", "red", "--dataset", tmp_path / "nope"]):
        done = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO, text=True,
                              capture_output=True, timeout=60)
        code, heavy = (done.stdout.strip().split(" ") + [""])[:2]
        assert code == "2" and heavy == "", (args, done.stdout, done.stderr)
        assert "nope" in done.stderr and "Traceback" not in done.stderr


def test_table_imports_neither_torch_nor_prefect(tmp_path):
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    script = ("import sys\nfrom shoefind.cli.main import main\n"
              "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
              "print(sorted(m for m in ('torch', 'clip', 'prefect', 'open_clip') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script, "table", str(dataset), "--data-dir", str(tmp_path / "d"),
                           "--json"], cwd=REPO, text=True, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert json.loads(done.stdout[:done.stdout.rindex("}") + 1])["images"] == 4


def test_the_dataset_is_given_the_same_way_everywhere(tmp_path, capfd):
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    for args in (["table", dataset], ["table", "--dataset", dataset], ["table", "-d", dataset]):
        code, out, err = shoefind_here(capfd, *args, "--data-dir", tmp_path / "d", "--json")
        assert code == 0 and json.loads(out)["shoes"] == 4, err
    code, out, err = shoefind_here(capfd, "table", dataset, "--dataset", tmp_path, "--data-dir", tmp_path / "d")
    assert code == 2 and "two datasets" in err


def test_help_and_version(capfd):
    code, out, _ = shoefind("-h")
    assert code == 0 and "infer" in out and "doctor" in out
    code, out, _ = shoefind_here(capfd, "--version")
    assert code == 0 and out.startswith("shoefind")
    code, out, _ = shoefind_here(capfd, "embed", "-h")
    assert code == 0 and "--batch-size" in out and "--dataset" in out


def test_runtime_choices_cover_the_library():
    from shoefind.cli.options import DEVICE_CHOICES, RUNTIME_CHOICES
    from shoefind.encoders.runtimes.choose import DEVICES, RUNTIMES
    assert set(RUNTIMES) == set(RUNTIME_CHOICES) and "auto" in RUNTIME_CHOICES
    assert DEVICE_CHOICES == DEVICES == ("auto", "cpu", "cuda")


def test_cluster_forms():
    from shoefind.cluster import check_cluster, local_workers, scheduler_address
    from shoefind.errors import UserError
    assert local_workers("local:3") == 3 and local_workers("tcp://s:8786") is None
    assert scheduler_address("tcp://10.0.0.2:8786") == ("10.0.0.2", 8786)
    assert scheduler_address("sched:8786") == ("sched", 8786)
    for bad in ("host:notaport", "tcp://h:0", "tcp://h:70000", "local:x", "justahost"):
        with pytest.raises(UserError):
            check_cluster(bad)


def test_user_errors_share_one_base():
    from shoefind.crawl.browser import BrowserUnavailable
    from shoefind.crawl.manifest import ManifestBusy
    from shoefind.crawl.search_page import SearchUnavailable
    from shoefind.crawl.targets import TargetError
    from shoefind.errors import UserError
    from shoefind.features.catalog import EmptyCatalog
    from shoefind.images import ImageError
    for cls in (BrowserUnavailable, ManifestBusy, SearchUnavailable, TargetError, EmptyCatalog, ImageError):
        assert issubclass(cls, UserError), cls
