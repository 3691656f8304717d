"""pea-train as a user runs it: exit codes and one-line errors on bad input."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pea_deploy.cli.train import main

from cli_checks import assert_one_error_line

FAST = ["--epochs", "2", "--initial-epochs", "0", "--transition-end", "1", "--width", "0.125", "-q"]


def run(*args):
    return CliRunner().invoke(main, list(args))


def one_error_line(result, code, pattern):
    assert_one_error_line(result, "pea-train", code, pattern)


def test_train_then_resume_complete_run(tmp_path):
    out = tmp_path / "run"
    r = run(*FAST, "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "all alphas 1: True" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"]["train"]["epochs"] == 2
    r = run("--resume", str(out), "-q")
    assert r.exit_code == 0 and json.loads((out / "summary.json").read_text())["epochs"] == 2


def test_bad_inputs_give_one_line(tmp_path):
    one_error_line(run("no-such-recipe"), 2, "unknown recipe")
    (tmp_path / "r.toml").write_text("[optim]\nlearning_rate = 0.1\n")
    one_error_line(run(str(tmp_path / "r.toml")), 2, "unknown key 'learning_rate'")
    (tmp_path / "broken.toml").write_text("[optim\n")
    one_error_line(run(str(tmp_path / "broken.toml")), 2, "not valid TOML")
    one_error_line(run("--dataset", "image-folder", "--data-dir", str(tmp_path / "nope"), *FAST), 2,
                   "does not exist")
    (tmp_path / "empty").mkdir()
    one_error_line(run("--dataset", "image-folder", "--data-dir", str(tmp_path / "empty"), *FAST), 2,
                   "no class subfolders")
    one_error_line(run("--resume", str(tmp_path / "empty"), "-q"), 2, "not a run directory")
    one_error_line(run("--act", "gelu", "--resume", str(tmp_path)), 2, "own recipe")


def test_corrupt_checkpoint_on_resume(tmp_path):
    out = tmp_path / "run"
    assert run(*FAST, "--out", str(out)).exit_code == 0
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:2000])
    one_error_line(run("--resume", str(out), "-q"), 2, "not a readable checkpoint")


def test_image_folder_and_unreadable_image(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(12):
            arr = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
    r = run("--dataset", "image-folder", "--data-dir", str(tmp_path), "--image-size", "12",
            "--batch-size", "8", *FAST, "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    one_error_line(run("--dataset", "image-folder", "--data-dir", str(tmp_path), *FAST), 2,
                   "cannot read image")


def test_divergence_names_only_a_checkpoint_that_exists(tmp_path):
    out = tmp_path / "run"
    r = run(*FAST, "--optimizer", "sgd", "--lr", "100", "--warmup-epochs", "0", "--out", str(out))
    one_error_line(r, 1, "loss became")
    assert "no checkpoint was written" in r.stderr and "last.pt" not in r.stderr
    assert not out.exists()


def test_nan_loss_keeps_the_last_good_checkpoint(tiny_recipe, tmp_path):
    import dataclasses

    from pea_deploy.errors import TrainingDiverged
    from pea_deploy.train.loop import Trainer

    with Trainer(tiny_recipe, tmp_path, progress=False, log=lambda m: None) as trainer:
        trainer.fit(until_epoch=1)
        good = (tmp_path / "checkpoints" / "last.pt").read_bytes()
        trainer.lr_schedule = dataclasses.replace(trainer.lr_schedule, base_lr=1e30)  # force a NaN
        with pytest.raises(TrainingDiverged, match=r"last good checkpoint kept: .*last\.pt \(epoch 1\)"):
            trainer.fit()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == good
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("args,message", [
    (["--lr", "nan"], "optim.lr must be in (0, 100], got nan"),
    (["--lr", "1e6"], "optim.lr must be in (0, 100]"),
    (["--lr", "0"], "optim.lr must be in (0, 100]"),
    (["--width", "-1"], "model.width must be in (0, 8]"),
    (["--dropout", "1.5"], "model.dropout must be in [0, 1)"),
    (["--momentum", "inf"], "optim.momentum must be in [0, 1)"),
    (["--weight-decay", "-0.1"], "optim.weight_decay must be in [0, 1)"),
    (["--label-smoothing", "1"], "optim.label_smoothing must be in [0, 1)"),
    (["--image-size", "4"], "data.image_size must be in [8, 4096]"),
    (["--batch-size", "0"], "data.batch_size must be in [1, inf)"),
    (["--crop-padding", "-2"], "data.crop_padding must be in [0, inf)"),
    (["--swish-beta", "0"], "pea.swish_beta must be in (0, inf)"),
    (["--min-lr", "1"], "optim.min_lr (1) must not exceed optim.lr"),
])
def test_out_of_range_numbers_are_refused_up_front(tmp_path, args, message):
    out = tmp_path / "run"
    one_error_line(run(*FAST, *args, "--out", str(out)), 2, message)
    assert not out.exists()


def test_out_of_range_recipe_field_names_the_field(tmp_path):
    (tmp_path / "r.toml").write_text("[model]\nwidth = -1\n")
    one_error_line(run(str(tmp_path / "r.toml"), "-q", "--out", str(tmp_path / "run")), 2,
                   "model.width must be in (0, 8], got -1")
    assert not (tmp_path / "run").exists()
