"""Bad input is refused with one line and exit code 2, before any work (issue 25, parts 5 and 6): empty and
unreadable datasets, too many threads, special files as photos, a dead Prefect API, terminal escapes in
names, and --data-dir honoured by the fidelity record."""
from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, make_labeled_dataset, make_photo
from tests.helpers.cli import shoefind, shoefind_here


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    return " ".join(lines[0].split())


# --- empty datasets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["embed", "evaluate", "table"])
@pytest.mark.parametrize("shape", ["empty folder", "shoe folders without photos"])
def test_a_dataset_without_photos_exits_2(command, shape, tmp_path, tiny_model, capfd):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    if shape != "empty folder":
        (dataset / "Nike_High_Red_Plain Sole_Air Test").mkdir()
    model = [] if command == "table" else ["--model", tiny_model]
    code, out, err = shoefind_here(capfd, command, dataset, *model, "--data-dir", tmp_path / "data")
    assert code == 2, out + err
    assert "has no image files" in one_error_line(err)
    assert not (tmp_path / "data" / "runs").exists() and not (tmp_path / "data" / "embeddings").exists()


# --- threads ---------------------------------------------------------------------------------------------
def test_threads_are_bounded_by_the_machine(tmp_path, capfd):
    from shoefind.cluster import check_threads, cpu_count, max_threads
    from shoefind.errors import UserError
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    code, _, err = shoefind_here(capfd, "embed", dataset, "--threads", "100000", "--data-dir", tmp_path / "data")
    line = one_error_line(err)
    assert code == 2 and "--threads" in line and f"give 1 to {max_threads()}" in line
    code, _, err = shoefind_here(capfd, "embed", dataset, "--cluster", "local:100000", "--data-dir", tmp_path / "data")
    assert code == 2 and "local workers 100000" in one_error_line(err)
    assert max_threads() >= cpu_count() and check_threads(max_threads()) == max_threads()
    with pytest.raises(UserError, match="100000"):
        from shoefind.encoders.load import load_encoder
        load_encoder("efficientnet-lite0", threads=100000)   # flows and the library: refused before loading


# --- special files as photos --------------------------------------------------------------------------------
@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_infer_refuses_a_special_file_before_opening_it(special, fifo, tmp_path, tiny_model):
    photo = fifo if special == "fifo" else Path(special)
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    # a new process with a deadline: reading a FIFO blocks, /dev/zero never ends
    code, _, err = shoefind("infer", photo, "--model", tiny_model, "--dataset", dataset, "--data-dir",
                            tmp_path / "data", timeout=120)
    line = one_error_line(err)
    assert code == 2 and str(photo) in line and ("FIFO" in line or "device" in line)


LIBRARY_ON_SPECIAL_FILES = """
import sys
from shoefind.images import ImageError, open_image, sha256_file
for path in sys.argv[1:]:
    try:
        open_image(path)
    except ImageError as exc:
        print("open_image:", exc)
    try:
        sha256_file(path)
    except OSError as exc:   # what infer reports per photo: "cannot be read (...)"
        print("sha256_file:", exc.strerror)
"""


def test_the_library_refuses_special_files_as_photos(fifo):
    # in a new process with a deadline: before the fix, the FIFO blocked and /dev/zero never ended
    done = subprocess.run([sys.executable, "-c", LIBRARY_ON_SPECIAL_FILES, str(fifo), "/dev/zero"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all("not a photo file" in line for line in lines), done.stdout + done.stderr


# --- a dead Prefect API --------------------------------------------------------------------------------------
def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]    # closed again: nothing listens there


@pytest.mark.parametrize("command", ["embed", "evaluate", "infer"])
def test_a_dead_prefect_api_is_one_line_naming_it(command, tmp_path, tiny_model, monkeypatch, capfd):
    url = f"http://127.0.0.1:{_dead_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    target = [next(dataset.rglob("*.jpg")), "--dataset", dataset] if command == "infer" else [dataset]
    code, _, err = shoefind_here(capfd, command, *target, "--model", tiny_model, "--data-dir", tmp_path / "data")
    line = one_error_line(err)
    assert code == 2 and url in line and "PREFECT_API_URL" in line and "httpcore" not in err


# --- terminal escapes in names -------------------------------------------------------------------------------
def test_review_list_shows_escape_sequences_instead_of_sending_them(tmp_path, data_dir, capfd):
    from shoefind.curate.crawl_checks import CrawlRules
    from shoefind.curate.filter import run_filter
    from tests.helpers import filter_inputs as inputs
    shoe = "Vans_Low_Black_Plain Sole_\x1b]0;owned\x07\x1b[2J"
    inputs.photo(tmp_path / "crawl" / shoe / "p\x1b[31m0.jpg", color=(200, 30, 30))
    run_filter(tmp_path / "crawl", data_dir, checker=None, rules=CrawlRules(without_model="review"))
    code, out, err = shoefind_here(capfd, "review", "--list")
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07\\x1b[2J" in out and "p\\x1b[31m0.jpg" in out


# --- unreadable folders ---------------------------------------------------------------------------------------
def _without_root_powers() -> None:
    """Run as root, but without the capabilities that let root read any folder (chmod 000 then holds)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (1, 2):   # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH leave the bounding set before exec
            if libc.prctl(24, cap, 0, 0, 0) != 0:   # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "cannot drop CAP_DAC_OVERRIDE")


def _shoefind_unprivileged(*args):
    done = subprocess.run([sys.executable, "-m", "shoefind.cli.main", *map(str, args)], cwd=REPO, text=True,
                          capture_output=True, timeout=300, preexec_fn=_without_root_powers,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def locked_shoe(tmp_path):
    """A dataset whose one shoe folder is chmod 000, and one with a readable shoe beside a locked one."""
    only = tmp_path / "only-locked" / "Nike_High_Red_Plain Sole_Locked"
    mixed = make_labeled_dataset(tmp_path / "mixed", n_per_shoe=1) / "Nike_Low_Red_Plain Sole_Locked"
    for folder in (only, mixed):
        make_photo(folder / "a.jpg")
        folder.chmod(0)
    yield only.parent, mixed.parent
    for folder in (only, mixed):
        folder.chmod(0o755)


@pytest.mark.parametrize("command", ["table", "embed", "evaluate"])
def test_an_unreadable_folder_is_a_permission_problem_not_an_empty_one(command, locked_shoe, tmp_path, tiny_model):
    only, _ = locked_shoe
    model = [] if command == "table" else ["--model", tiny_model]
    code, _, err = _shoefind_unprivileged(command, only, *model, "--data-dir", tmp_path / "data")
    line = one_error_line(err)
    assert code == 2 and "cannot be read (Permission denied)" in line and "no image files (" not in line


def test_a_table_lists_an_unreadable_shoe_folder(locked_shoe, tmp_path):
    _, mixed = locked_shoe
    code, out, err = _shoefind_unprivileged("table", mixed, "--data-dir", tmp_path / "data", "--json")
    assert code == 0, err
    issues = (tmp_path / "data" / "tables" / "mixed" / "issues.csv").read_text()
    assert "unreadable-folder" in issues and "Permission denied" in issues
    assert "shoe has no image files" not in issues
    assert json.loads(out)["images"] == 4


def test_infer_on_an_unreadable_folder_says_so(locked_shoe, tmp_path, tiny_model):
    only, mixed = locked_shoe
    code, _, err = _shoefind_unprivileged("infer", only, "--model", tiny_model, "--dataset", mixed,
                                          "--data-dir", tmp_path / "data")
    assert code == 2 and "cannot be read (Permission denied)" in one_error_line(err)


# --- --data-dir and the fidelity record -------------------------------------------------------------------------
def test_the_fidelity_record_goes_under_the_data_dir_given(tmp_path, tiny_model, monkeypatch, capfd):
    elsewhere = tmp_path / "SHOEFIND_DATA"
    monkeypatch.setenv("SHOEFIND_DATA", str(elsewhere))
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=1)
    given = tmp_path / "given"
    code, _, err = shoefind_here(capfd, "embed", dataset, "--model", tiny_model, "--runtime", "onnx-int8",
                                 "--data-dir", given)
    assert code == 0, err
    records = list((given / "embeddings" / "fidelity").glob("*.json"))
    assert records and "onnx-int8" in records[0].read_text()
    assert not elsewhere.exists(), sorted(elsewhere.rglob("*"))
