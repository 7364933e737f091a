"""Fine-tuning CLIP (text tower + last visual blocks, WiSE-FT): a checkpoint clip.load reads, its
manifest, interpolation, and a killed run that leaves the previous checkpoint intact."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shoefind.encoders.load import forget_loaded, load_model
from shoefind.errors import UserError
from shoefind.features.table import build_table
from shoefind.learn.finetune import finetune_clip, trainable_parameters, wise_ft

from tests.helpers.colour_task import colour_dataset


@pytest.fixture(scope="module")
def colour_table(tmp_path_factory):
    return build_table(colour_dataset(tmp_path_factory.mktemp("ft") / "photos", per_class=5))


def test_finetune_writes_a_checkpoint_every_command_loads_and_its_manifest(colour_table, tiny_model, tmp_path):
    encoder = load_model(tiny_model)
    out = tmp_path / "models" / "colours-ft.pt"
    result = finetune_clip(encoder, tiny_model, colour_table, out, blocks=1, alpha=0.5, epochs=2, lr=1e-3,
                           batch_size=8, precision="fp32")
    m = json.loads((out.with_name(out.name + ".json")).read_text())
    assert m["base_model"]["sha256"] and len(m["base_model"]["sha256"]) == 64
    assert m["split"]["heldout_photos"] == 4 and m["split"]["train_photos"] == 16    # one in five per colour
    assert m["hyperparameters"]["blocks"] == 1 and m["hyperparameters"]["alpha"] == 0.5
    assert {"zero_shot_top1", "zero_shot_top1_before"} <= set(m["heldout"]) and m["training"]["steps"] == 4
    assert "held-out zero-shot top-1" in out.with_name(out.name + ".md").read_text()
    forget_loaded()
    tuned = load_model(str(out))                                      # clip.load reads it
    base = encoder.model.state_dict()
    new = tuned.model.state_dict()
    # frozen visual blocks unchanged, the text tower moved, half-way (WiSE-FT alpha 0.5)
    assert torch.allclose(new["visual.conv1.weight"].float(), base["visual.conv1.weight"].float(), atol=1e-3)
    assert not torch.allclose(new["text_projection"].float(), base["text_projection"].float(), atol=1e-4)
    assert result.heldout["zero_shot_top1"] == m["heldout"]["zero_shot_top1"]


def test_wise_ft_interpolates_and_blocks_select_the_visual_tail(tiny_model):
    encoder = load_model(tiny_model)
    a = {"w": torch.zeros(3), "steps": torch.tensor(1)}
    b = {"w": torch.ones(3) * 4, "steps": torch.tensor(7)}
    assert torch.allclose(wise_ft(a, b, 0.25)["w"], torch.ones(3))
    with pytest.raises(UserError, match="between 0"):
        wise_ft(a, b, 1.5)
    names = set(trainable_parameters(encoder.model, 1))
    assert "text_projection" in names and "visual.proj" in names
    assert "visual.transformer.resblocks.0.attn.in_proj_weight" in names        # the tiny model has one block
    assert not any(n.startswith("visual.") for n in trainable_parameters(encoder.model, 0))
    with pytest.raises(UserError, match="--blocks 5"):
        trainable_parameters(encoder.model, 5)


def test_a_killed_run_leaves_the_previous_checkpoint_intact(colour_table, tiny_model, tmp_path):
    encoder = load_model(tiny_model)
    out = tmp_path / "ft.pt"
    finetune_clip(encoder, tiny_model, colour_table, out, blocks=0, epochs=1, batch_size=16, precision="fp32")
    before = out.read_bytes()

    def killed(step):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune_clip(encoder, tiny_model, colour_table, out, blocks=0, epochs=1, batch_size=16,
                      precision="fp32", after_step=killed)
    assert out.read_bytes() == before and not list(tmp_path.glob(".*part"))


def test_bad_input_is_one_clear_error(colour_table, tiny_model, tmp_path):
    backbone = load_model("efficientnet-lite0")
    with pytest.raises(UserError, match="fine-tunes a CLIP model"):
        finetune_clip(backbone, None, colour_table, tmp_path / "x.pt")
    one = build_table(colour_dataset(tmp_path / "one", per_class=1))
    with pytest.raises(UserError, match="too few photos"):
        finetune_clip(load_model(tiny_model), None, one, tmp_path / "x.pt")


def test_too_few_photos_from_the_cli_is_one_line(tiny_model, tmp_path):
    from typer.testing import CliRunner
    from shoefind.cli.main import app
    one = colour_dataset(tmp_path / "one", per_class=1)
    res = CliRunner().invoke(app, ["learn", str(one), "--method", "finetune", "--model", tiny_model,
                                   "--data-dir", str(tmp_path / "d")])
    assert res.exit_code == 2 and "too few photos" in res.output and "Traceback" not in res.output, res.output
