"""Training refuses to start from bad hyperparameters (command line, flow parameters, library) and
refuses to save non-finite weights; the diverging runs themselves are in
tests/models/test_diverged_training.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

from shoefind.errors import UserError
from shoefind.learn.finite import DivergedTraining, require_finite_loss, require_finite_weights
from tests.helpers.cli import shoefind_here

BAD_OPTIONS = [
    ("--lr", "inf"), ("--lr", "nan"), ("--lr", "0"), ("--lr", "-1e-5"), ("--lr", "5"),
    ("--alpha", "nan"), ("--alpha", "1.5"), ("--epochs", "100000"), ("--blocks", "1000"),
    ("--steps", "0"), ("--steps", "99999999"), ("--max-epochs", "999999"), ("--seed", str(2 ** 32)),
]


@pytest.mark.parametrize("option, value", BAD_OPTIONS)
def test_out_of_range_hyperparameters_are_refused_while_parsing(option, value, capfd, data_dir, tmp_path):
    # the folder does not exist either: the option is refused first, before any work
    code, out, err = shoefind_here(capfd, "learn", tmp_path / "nowhere", "--method", "finetune", option, value)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and option in lines[0], err
    assert not any(data_dir.iterdir())


def test_flow_parameters_are_range_checked_before_the_run():
    from prefect.exceptions import ParameterTypeError

    from flows.learn import learn_flow
    for name, value in [("lr", math.inf), ("lr", math.nan), ("lr", 0.0), ("lr", 5.0), ("alpha", math.nan),
                        ("epochs", 100000), ("steps", 10 ** 8), ("max_epochs", 10 ** 6), ("seed", 2 ** 32),
                        ("blocks", 1000)]:
        with pytest.raises(ParameterTypeError):
            learn_flow.validate_parameters({name: value})
    assert learn_flow.validate_parameters({"lr": 1e-4, "alpha": 0.3, "epochs": 3})["lr"] == 1e-4


def test_the_training_functions_check_their_hyperparameters_too(tmp_path):
    from shoefind.learn.finetune import finetune_clip
    from shoefind.learn.lit import LitSettings, train_text_tower
    with pytest.raises(UserError, match="lr inf: give a finite number"):
        finetune_clip(None, None, None, tmp_path / "out.pt", lr=math.inf)
    with pytest.raises(UserError, match="scale-lr 5.0: out of range"):
        train_text_tower(None, np.zeros((2, 4)), None, LitSettings(scale_lr=5.0))
    assert not any(tmp_path.iterdir())


def test_non_finite_losses_and_weights_are_named():
    import torch
    require_finite_loss(torch.tensor(0.5), "step 1", "training")
    with pytest.raises(DivergedTraining, match="loss is nan at step 3; nothing was saved"):
        require_finite_loss(torch.tensor(float("nan")), "step 3", "training")
    weights = {"a": torch.ones(3), "b": torch.tensor([1.0, float("inf")]), "steps": torch.tensor(4),
               "c": np.array([np.nan], np.float32)}
    with pytest.raises(DivergedTraining, match=r"2 of 4 tensors hold NaN or infinite values \(b, c\)"):
        require_finite_weights(weights, "training")


def test_learned_classifiers_with_nan_are_not_saved(tmp_path):
    """save_learned refuses before it writes a file: the classifiers saved before stay."""
    import pandas as pd

    from shoefind.learn.methods import Comparison
    from shoefind.learn.fewshot import LinearProbe
    from shoefind.learn.saved import learned_dir, save_learned

    class Encoder:
        model_id, cache_key, has_text = "m", "m|k", True
    probe = LinearProbe(["a", "b"], np.full((4, 2), np.nan, np.float32), np.zeros(2, np.float32), 100.0)
    comparison = Comparison(pd.DataFrame(), split=None, fitted={"linear-probe": {"name": probe}},
                            support={"name": (np.ones((2, 4), np.float32), ["a", "b"])})
    folder = learned_dir(tmp_path, "m", "shoes")
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(DivergedTraining, match=r"linear-probe \(name\) weights"):
        save_learned(tmp_path, comparison, Encoder(), "shoes")
    assert [p.name for p in folder.iterdir()] == ["manifest.json"]
    assert (folder / "manifest.json").read_text() == "{}"
