"""Training that diverges saves nothing: `learn --method finetune --lr inf` used to exit 0 with NaN in
17 of 38 tensors of the tiny CLIP. The command line now refuses such a rate (tests/unit/
test_training_guards.py); here the range checks are stepped around to let real training diverge,
and the loss and weight checks must stop it, with the previous checkpoint left as it was."""
from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from shoefind.cli.main import app
from shoefind.encoders.load import load_model
from shoefind.features.table import build_table
from shoefind.learn.finite import DivergedTraining

from tests.helpers import make_labeled_dataset
from tests.helpers.colour_task import colour_dataset

PREVIOUS = b"the checkpoint of an earlier run"


@pytest.fixture(scope="module")
def colour_photos(tmp_path_factory):
    return colour_dataset(tmp_path_factory.mktemp("diverge") / "photos", per_class=5)


@pytest.fixture
def no_range_checks(monkeypatch):
    """What a caller of the library that skipped the checks (or a rate merely too high) gets."""
    for module in ("shoefind.learn.finetune", "shoefind.learn.lit", "shoefind.stages.lit"):
        monkeypatch.setattr(f"{module}.check_hyperparameters", lambda **_: None)


def leaves_only_the_previous(out):
    assert out.read_bytes() == PREVIOUS
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]   # no manifest, no .part


def test_finetune_with_an_infinite_rate_stops_and_saves_nothing(colour_photos, tiny_model, tmp_path,
                                                                 no_range_checks):
    from shoefind.learn.finetune import finetune_clip
    out = tmp_path / "models" / "ft.pt"
    out.parent.mkdir()
    out.write_bytes(PREVIOUS)
    with pytest.raises(DivergedTraining, match="fine-tuning diverged: the loss is nan at step 2"):
        finetune_clip(load_model(tiny_model, runtime="torch"), tiny_model, build_table(colour_photos), out,
                      blocks=1, epochs=2, lr=math.inf, batch_size=8, precision="fp32")
    leaves_only_the_previous(out)


def test_lit_with_an_infinite_rate_stops_and_saves_nothing(tmp_path, tiny_model, data_dir, no_range_checks):
    from shoefind.learn.lit import LitSettings
    from shoefind.stages.lit import learn_lit_dataset
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=4)
    out = tmp_path / "models" / "tiny-lit.pt"
    out.parent.mkdir()
    out.write_bytes(PREVIOUS)
    with pytest.raises(DivergedTraining, match="LiT training diverged: the loss is nan at step 2"):
        learn_lit_dataset(dataset, data_dir, tiny_model, out=out, steps=5,
                          settings=LitSettings(lr=math.inf, precision="fp32"))
    leaves_only_the_previous(out)


def test_coop_with_an_infinite_rate_stops(tiny_model, colour_photos, tmp_path):
    from shoefind.learn.methods import task_specs
    from shoefind.learn.coop import train_coop
    from tests.helpers.colour_task import embedded
    encoder = load_model(tiny_model, runtime="torch")
    table = build_table(colour_photos)
    cache = embedded(encoder, table, tmp_path / "emb")
    spec = task_specs(encoder, table)[-1]      # the shoe's name
    x = cache.matrix(table.images["sha256"].tolist())
    with pytest.raises(DivergedTraining, match="CoOp training diverged: the loss is nan at epoch 2"):
        train_coop(encoder, spec, x, spec.labels(table.images), max_epochs=5, lr=math.inf, progress=False)


@pytest.fixture
def nan_model(tiny_model, tmp_path):
    """The tiny CLIP as `--lr inf` left it: NaN in its text tower."""
    state = torch.load(tiny_model, weights_only=True)
    state["text_projection"][:] = float("nan")
    path = tmp_path / "nan-clip.pt"
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize("method, extra", [("finetune", ["--blocks", "1", "--epochs", "1"]),
                                           ("lit", ["--steps", "3"])])
def test_training_from_a_nan_model_is_refused_with_one_line(method, extra, nan_model, colour_photos, tmp_path,
                                                            data_dir):
    dataset = make_labeled_dataset(tmp_path / "ds", n_per_shoe=4) if method == "lit" else colour_photos
    out = tmp_path / "models" / "out.pt"
    out.parent.mkdir()
    out.write_bytes(PREVIOUS)
    res = CliRunner().invoke(app, ["learn", str(dataset), "--model", nan_model, "--method", method,
                                   "--out", str(out), *extra])
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1, res.output
    assert "holds NaN or infinite values" in " ".join(res.stderr.split()) and "nothing was saved" in res.stderr
    leaves_only_the_previous(out)
