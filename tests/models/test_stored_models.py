"""Trained models and learned classifiers are verified before use (issue 25 part 3).

The hostile cases: nothing compared a checkpoint with the sha256 in its manifest; a truncated or edited
learned manifest silently fell back to zero-shot; edited LiT payloads, truncated CoOp `.pt` and truncated
few-shot `.npz` files gave tracebacks; code-carrying CoOp, HF, `.lit.pt` and open_clip files were refused
through torch's traceback or its advice to turn weights_only off; a NaN model was loaded for inference.
Each is now one line (exit code 2) or, for classifiers learned with another model, one warning line.
The models are real: tiny random CLIPs, tiny LiT towers over efficientnet-lite0, the demo model.
"""
from __future__ import annotations

import json
import os
import shutil
import zipfile

import numpy as np
import pytest
import torch

from shoefind.artifacts.finite import BrokenModel
from shoefind.encoders.checkpoint_manifest import CheckpointMismatch, manifest_paths
from shoefind.artifacts.torch_files import CodeCarryingFile, DamagedFile
from shoefind.encoders.base import ModelUnavailable
from shoefind.encoders.load import forget_loaded, load_model

from tests.helpers import make_labeled_dataset
from tests.helpers.cli import shoefind_here


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def refused(code: int, err: str, *words: str) -> str:
    """The one `error:` line of a refused command (exit code 2, no traceback)."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "Traceback" not in err and "weights_only" not in err, err
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


# --- learned classifiers (`shoefind learn`: DATA/learned/<model>/<dataset>/) ------------------------------

@pytest.fixture(scope="module")
def learned(tmp_path_factory, tiny_model):
    """A catalog with few-shot and CoOp classifiers learned by the tiny CLIP (once per module)."""
    from typer.testing import CliRunner
    from shoefind.cli.main import app
    root = tmp_path_factory.mktemp("learned")
    catalog = make_labeled_dataset(root / "catalog", n_per_shoe=4)
    res = CliRunner().invoke(app, ["learn", str(catalog), "--model", tiny_model, "--data-dir", str(root / "data"),
                                   "--method", "fewshot,coop", "--shots", "2"])
    assert res.exit_code == 0, res.output
    (folder,) = (root / "data" / "learned").glob("*/*")
    return catalog, root / "data", folder


@pytest.fixture
def copy(learned, tmp_path, tiny_model):
    """The learned data folder copied, to be damaged: (infer(capfd, *options) -> (code, out, err), its folder)."""
    catalog, data, folder = learned
    shutil.copytree(data, tmp_path / "data")
    here = tmp_path / "data" / folder.relative_to(data)
    photo = next(catalog.glob("Nike_High*/photo 0.jpg"))

    def infer(capfd, *options):
        return shoefind_here(capfd, "infer", photo, "--dataset", catalog, "--model", tiny_model,
                             "--data-dir", tmp_path / "data", *options)
    return infer, here


def edit_manifest(folder, **fields):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    for key, value in fields.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))


def test_the_learned_classifier_answers_before_anything_is_damaged(copy, capfd):
    infer, folder = copy
    code, out, err = infer(capfd)
    assert code == 0, err
    assert "learned by `shoefind learn`" in out
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["sha256"]) == {p.name for p in folder.iterdir() if p.suffix in (".npz", ".pt")}


def test_a_truncated_learned_manifest_is_refused_not_zero_shot(copy, capfd):
    infer, folder = copy
    text = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(text[: len(text) // 2])
    line = refused(*infer(capfd)[::2], "cannot be used: manifest.json cannot be read", str(folder))
    assert "delete that folder to use zero-shot" in line


@pytest.mark.parametrize("edit, why", [({"files": {"prototype": {"name": "../../../etc/passwd"}}}, "file names"),
                                       ({"best": {"name": 5}}, "best methods"),
                                       ({"comparison": [{"shots": "two"}]}, "comparison"),
                                       ({"sha256": {"fewshot-name.npz": "edited"}}, "sha256"),
                                       ({"zeroshot_options": {"prompts": "no-such-set"}}, "zero-shot options")])
def test_an_edited_learned_manifest_is_refused(copy, capfd, edit, why):
    infer, folder = copy
    edit_manifest(folder, **edit)
    refused(*infer(capfd)[::2], str(folder), why)


def test_classifiers_learned_with_another_model_are_said_to_be_unused(copy, capfd, caplog):
    infer, folder = copy
    edit_manifest(folder, model_id="another-model")
    with caplog.at_level("WARNING", logger="shoefind.identify"):
        code, out, err = infer(capfd)
    assert code == 0, err
    said = [r.getMessage() for r in caplog.records if r.name == "shoefind.identify"]
    assert len(said) == 1 and "was learned with another-model" in said[0] and "not using them" in said[0], said
    assert "zero-shot" in out


def test_a_damaged_few_shot_file_is_refused(copy, capfd):
    infer, folder = copy
    npz = folder / "fewshot-name.npz"
    npz.write_bytes(npz.read_bytes()[:200])
    refused(*infer(capfd)[::2], "fewshot-name.npz is not the file `shoefind learn` wrote")
    edit_manifest(folder, sha256=None)         # a manifest from before checksums: the file itself is judged
    refused(*infer(capfd)[::2], "fewshot-name.npz cannot be read whole", str(folder))


def test_a_few_shot_file_holding_nan_is_refused(copy, capfd):
    infer, folder = copy
    npz = folder / "fewshot-name.npz"
    with np.load(npz) as z:
        arrays = dict(z)
    arrays["embeddings"][0, 0] = np.nan
    np.savez(npz, **arrays)
    edit_manifest(folder, sha256=None)
    refused(*infer(capfd)[::2], "holds NaN or infinite values", "embeddings")


def _coop(folder):
    return folder / "coop-name.pt"


def test_a_truncated_coop_file_is_refused(copy, capfd):
    infer, folder = copy
    pt = _coop(folder)
    pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    refused(*infer(capfd, "--method", "coop")[::2], "coop-name.pt is not the file `shoefind learn` wrote")
    edit_manifest(folder, sha256=None)
    refused(*infer(capfd, "--method", "coop")[::2], "cannot be read as a CoOp classifier (truncated or damaged")


def test_a_code_carrying_coop_file_is_refused_with_shoefinds_line(copy, capfd, tmp_path):
    infer, folder = copy
    marker = tmp_path / "ran"
    payload = torch.load(_coop(folder), weights_only=True)
    torch.save(payload | {"training": RunsCode(marker)}, _coop(folder))
    edit_manifest(folder, sha256=None)
    refused(*infer(capfd, "--method", "coop")[::2], "would call posix.system", "never runs such files")
    assert not marker.exists()


@pytest.mark.parametrize("edit, why", [(lambda p: p | {"n_ctx": "four"}, "n_ctx is missing or not a int"),
                                       (lambda p: p | {"n_ctx": 10 ** 9}, "context length 1000000000 is out of range"),
                                       (lambda p: p | {"ctx": p["ctx"][:1]}, "its context has shape"),
                                       (lambda p: p | {"class_texts": p["class_texts"][:1]}, "class names"),
                                       (lambda p: p | {"ctx": p["ctx"] * float("nan")}, "holds NaN")])
def test_an_edited_coop_payload_is_one_line(copy, capfd, edit, why):
    infer, folder = copy
    torch.save(edit(torch.load(_coop(folder), weights_only=True)), _coop(folder))
    edit_manifest(folder, sha256=None)
    refused(*infer(capfd, "--method", "coop")[::2], why)


# --- LiT checkpoints (.lit.pt) ----------------------------------------------------------------------------

def _write_lit(path, edit=None, manifest: bool = True):
    from shoefind.encoders.families.backbones import load_backbone
    from shoefind.encoders.families.lit import backbone_base, write_lit
    from shoefind.encoders.families.text_tower import TextTower, TowerConfig
    from shoefind.learn.checkpoint import write_model
    backbone = load_backbone("efficientnet-lite0")
    torch.manual_seed(0)
    tower = TextTower(TowerConfig(backbone.embed_dim, width=32, layers=1, heads=1))

    def write(tmp):
        write_lit(tmp, tower, backbone_base(backbone))
        if edit:
            torch.save(edit(torch.load(tmp, weights_only=True)), tmp)
    if manifest:
        write_model(path, write, {"method": "lit"})
    else:
        write(path)
    return path


def test_a_lit_checkpoint_is_the_file_its_manifest_describes(tmp_path, capfd):
    from shoefind.encoders.families.lit import load_lit
    path = _write_lit(tmp_path / "m.lit.pt")
    assert load_lit(path).has_text
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["text_projection"] *= 2            # an edit that loads fine: only the sha256 tells
    torch.save(payload, path)
    with pytest.raises(CheckpointMismatch, match="is not the file its manifest m.lit.pt.json describes"):
        load_lit(path)
    manifest = manifest_paths(path)[0]
    manifest.write_text(manifest.read_text()[:40])
    dataset = make_labeled_dataset(tmp_path / "catalog", n_per_shoe=1)
    code, out, err = shoefind_here(capfd, "search", "red shoe", "--model", path, "--dataset", dataset,
                                   "--data-dir", tmp_path / "data")
    refused(code, err, "m.lit.pt.json, the manifest of m.lit.pt, is truncated")


@pytest.mark.parametrize("edit, why", [
    (lambda p: p | {"tower": p["tower"] | {"width": 10 ** 7}}, "width 10000000"),
    (lambda p: p | {"tower": p["tower"] | {"context_length": 5}}, "context_length 5"),
    (lambda p: p | {"tower": p["tower"] | {"depth": 3}}, "unknown fields"),
    (lambda p: p | {"tower": "tiny"}, "config is missing"),
    (lambda p: p | {"base": ["efficientnet-lite0"]}, "does not name the image backbone"),
    (lambda p: p | {"state_dict": {k: v for k, v in p["state_dict"].items() if k != "ln_final.weight"}},
     "do not fit its config"),
    (lambda p: p | {"state_dict": p["state_dict"] | {"ln_final.weight": torch.ones(7)}}, "do not fit its config"),
    (lambda p: p | {"version": "one"}, "its version is 'one'"),
])
def test_an_edited_lit_payload_is_one_line(tmp_path, edit, why):
    from shoefind.encoders.families.lit import load_lit
    path = _write_lit(tmp_path / "e.lit.pt", edit, manifest=False)   # no manifest: the payload itself is judged
    with pytest.raises(ModelUnavailable, match="is not a usable LiT checkpoint") as error:
        load_lit(path)
    assert why in str(error.value) and "\n" not in str(error.value)


def test_a_truncated_lit_checkpoint_is_one_line(tmp_path):
    from shoefind.encoders.families.lit import load_lit
    path = _write_lit(tmp_path / "t.lit.pt", manifest=False)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DamagedFile, match="cannot be read as a LiT checkpoint .truncated or damaged"):
        load_lit(path)
    with zipfile.ZipFile(tmp_path / "z.lit.pt", "w") as z:    # a zip that is not a torch file
        z.writestr("hello.txt", "hi")
    with pytest.raises(DamagedFile):
        load_lit(tmp_path / "z.lit.pt")


def test_a_nan_lit_model_is_refused_when_loaded_for_inference(demo_lit, tmp_path, capfd):
    """The demo model with one NaN in its text tower (what an older shoefind could save): it answered
    "no catalog shoe matches" to every photo; now every command refuses it in one line."""
    payload = torch.load(demo_lit.model, weights_only=True)
    payload["state_dict"]["text_projection"][0, 0] = float("nan")
    path = tmp_path / "demo-nan.lit.pt"
    torch.save(payload, path)          # no manifest: an older file, judged by its numbers
    forget_loaded()
    with pytest.raises(BrokenModel, match="holds NaN or infinite values in 1 of .* tensors .text_projection."):
        load_model(str(path))
    dataset = make_labeled_dataset(tmp_path / "catalog", n_per_shoe=1)
    code, out, err = shoefind_here(capfd, "infer", next(dataset.glob("*/photo 0.jpg")), "--model", path,
                                   "--dataset", dataset, "--data-dir", tmp_path / "data")
    refused(code, err, "demo-nan.lit.pt", "holds NaN", "so it cannot answer")
    # the demo model itself, with its manifest, loads
    forget_loaded()
    assert load_model(str(demo_lit.model)).has_text


# --- fine-tuned and other CLIP checkpoints ----------------------------------------------------------------

def test_an_edited_fine_tuned_checkpoint_is_refused(tiny_model, tmp_path):
    from shoefind.features.table import build_table
    from shoefind.learn.finetune import finetune_clip
    from tests.helpers.colour_task import colour_dataset
    out = tmp_path / "ft.pt"
    forget_loaded()
    finetune_clip(load_model(tiny_model, runtime="torch"), tiny_model, build_table(colour_dataset(tmp_path / "p", 3)),
                  out, blocks=1, epochs=1, batch_size=8, precision="fp32")
    manifest = json.loads(manifest_paths(out)[0].read_text())
    assert len(manifest["checkpoint_sha256"]) == 64
    assert load_model(str(out), runtime="torch").has_text
    state = torch.load(out, weights_only=True)
    state["text_projection"] += 0.01
    torch.save(state, out)
    forget_loaded()
    for runtime in ("torch", "onnx"):
        with pytest.raises(CheckpointMismatch, match="ft.pt is not the file its manifest ft.pt.json describes"):
            load_model(str(out), runtime=runtime)


def test_code_carrying_hf_and_open_clip_weights_are_refused_with_shoefinds_line(tmp_path):
    from shoefind.encoders.families.hf import make_tiny_hf
    from shoefind.encoders.families.open_clip import make_tiny_open_clip
    marker = tmp_path / "ran"
    hf = make_tiny_hf(tmp_path / "hf")
    (hf / "model.safetensors").unlink()
    torch.save({"weights": RunsCode(marker)}, hf / "pytorch_model.bin")
    oc = make_tiny_open_clip(tmp_path / "oc")
    (oc / "open_clip_model.safetensors").unlink()
    torch.save({"weights": RunsCode(marker)}, oc / "open_clip_pytorch_model.bin")
    forget_loaded()
    for spec in (f"hf:{hf}", f"open_clip:{oc}", f"open_clip:ViT-B-32/{oc / 'open_clip_pytorch_model.bin'}"):
        with pytest.raises(CodeCarryingFile, match="would call posix.system") as error:
            load_model(spec)
        assert "weights_only" not in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()
