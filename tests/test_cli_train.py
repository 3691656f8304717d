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


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    r = run(*FAST, "--optimizer", "sgd", "--lr", "1e30", "--warmup-epochs", "0", "--out", str(out))
    one_error_line(r, 1, "loss became")
    assert "last good checkpoint kept" in r.stderr
    assert not list(out.rglob("*.tmp"))
