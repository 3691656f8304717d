import csv
import json

import pytest
import torch

from pea_deploy.errors import CheckpointError, ConfigError
from pea_deploy.train import Recipe, Trainer, load_checkpoint, load_recipe, resume, train


def test_default_recipe_run_writes_everything_and_ends_relu_only(tiny_recipe, tmp_path):
    summary = train(tiny_recipe, tmp_path, progress=False)
    assert summary["all_alphas_one"] and set(summary["final_alphas"].values()) == {1.0}
    for name in ("metrics.csv", "history.png", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [float(r["alpha"]) for r in rows] == [0.0, 1.0, 1.0]
    assert json.loads((tmp_path / "summary.json").read_text())["epochs"] == 3
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["epoch"] == 3 and ckpt["recipe"]["pea"]["act"] == "gelu"
    assert all(float(v) == 1.0 for k, v in ckpt["model"].items() if k.endswith("alpha"))
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"


@pytest.mark.parametrize("variant", ["weighted", "stochastic"])
def test_resume_is_bit_identical(tiny_recipe, tmp_path, variant):
    recipe = tiny_recipe.with_overrides({"train.epochs": 4, "pea.transition_end": 3,
                                         "pea.variant": variant, "model.dropout": 0.2})
    full = tmp_path / "full"
    train(recipe, full, progress=False)
    part = tmp_path / "part"
    Trainer(recipe, part, progress=False).fit(until_epoch=2)  # stops after epoch 2, as a killed run
    assert load_checkpoint(part)["epoch"] == 2
    torch.manual_seed(12345)  # a new process would start from another RNG state
    resume(part, progress=False)
    a = load_checkpoint(full)["model"]
    b = load_checkpoint(part)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert load_checkpoint(full)["history"][-1]["val_top1"] == load_checkpoint(part)["history"][-1]["val_top1"]


def test_baseline_and_upper_limit_modes(tiny_recipe, tmp_path):
    base = train(tiny_recipe.with_overrides({"pea.mode": "relu"}), tmp_path / "b", progress=False)
    assert base["final_alphas"] == {} and base["best_relu_only"]
    upper = train(tiny_recipe.with_overrides({"pea.mode": "act"}), tmp_path / "u", progress=False)
    assert upper["best_relu_only"] is None  # an Act-only net is never ReLU-only
    state = load_checkpoint(tmp_path / "u")["model"]
    assert not any(k.endswith("alpha") for k in state)


def test_recipe_validation():
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        Recipe.from_dict({"optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        Recipe.from_dict({"modle": {}})
    with pytest.raises(ConfigError, match="did you mean 'mish'"):
        Recipe.from_dict({"pea": {"act": "mesh"}})
    with pytest.raises(ConfigError, match="final phase"):
        Recipe.from_dict({"pea": {"transition_end": 130}, "train": {"epochs": 120}})
    with pytest.raises(ConfigError, match="must be float"):
        Recipe.from_dict({"optim": {"lr": "fast"}})


def test_builtin_recipes_all_load():
    from pea_deploy.train import builtin_recipes

    names = builtin_recipes()
    assert "digits-resnet18-pea-gelu" in names
    for name in names:
        load_recipe(name)


def test_checkpoint_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a pea-deploy checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not a run directory"):
        load_checkpoint(tmp_path)


def test_bf16_autocast_and_channels_last_train_on_cpu(tiny_recipe, tmp_path):
    """The mixed-precision path (bf16 autocast, NHWC memory format) runs real steps to alpha 1."""
    from pea_deploy.train import train

    recipe = tiny_recipe.with_overrides({"train.amp": "bf16", "train.channels_last": True})
    summary = train(recipe, tmp_path, progress=False, log=lambda m: None)
    assert summary["all_alphas_one"] and summary["final_val_top1"] > 20.0


def test_fp16_needs_cuda(tiny_recipe, tmp_path):
    import pytest
    import torch

    from pea_deploy.errors import ConfigError
    from pea_deploy.train import train

    if torch.cuda.is_available():
        pytest.skip("CUDA present: fp16 is allowed")
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        train(tiny_recipe.with_overrides({"train.amp": "fp16"}), tmp_path, progress=False, log=lambda m: None)


def test_resume_accepts_a_checkpoint_from_before_new_recipe_fields(tiny_recipe, tmp_path):
    """A field added by a later version (here train.amp) takes its default, not 'recipe differs'."""
    import torch

    from pea_deploy.train.checkpoint import load_checkpoint, save_checkpoint
    from pea_deploy.train.loop import Trainer

    Trainer(tiny_recipe, tmp_path, progress=False, log=lambda m: None).fit(until_epoch=1)
    state = load_checkpoint(tmp_path)
    del state["recipe"]["train"]["amp"]
    save_checkpoint(tmp_path / "checkpoints" / "last.pt", {k: v for k, v in state.items()
                                                           if k not in ("format", "format_version",
                                                                        "pea_deploy_version")})
    summary = Trainer(tiny_recipe, tmp_path, resume=True, progress=False, log=lambda m: None).fit()
    assert summary["epochs"] == tiny_recipe.train.epochs and torch.isfinite(torch.tensor(summary["final_val_top1"]))
