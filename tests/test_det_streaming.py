"""det-folder streamed from disk (issue 30 item 4): images decoded, letterboxed and augmented per item
in the loader's workers give the batches the in-memory set gives, bit for bit, with any number of
workers, so a streamed run trains, resumes and scores as the in-memory run does; bad labels are still
one line before training, an unreadable image one line naming it. And summary.json's mAP@0.5 beside
mAP@0.5:0.95, in pea-compare's table too (issue 31 item 4)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from pea_deploy.compare import build_table, plan_settings, run_comparison, to_markdown
from pea_deploy.data import iterate
from pea_deploy.data.loader import Augmentation, training_batches
from pea_deploy.detection import folder
from pea_deploy.detection.folder import DetectionFiles, load_detection_folder
from pea_deploy.errors import DataError
from pea_deploy.train import load_recipe
from pea_deploy.train.loop import Trainer

from cli_checks import assert_one_error_line
from yolo_sets import write_split, write_ultralytics_set


def both(path, workers=2, **options):
    """The set at `path` in memory and streamed."""
    return (load_detection_folder(str(path), 64, in_memory=True, **options),
            load_detection_folder(str(path), 64, in_memory=False, workers=workers, **options))


def epoch(data, seed, workers=None):
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    augmentation = Augmentation(("crop", "flip"), 8, "boxes")
    return list(training_batches(data, 4, order, augmentation, torch.Generator().manual_seed(seed), workers))


def test_streamed_batches_equal_the_in_memory_ones(tmp_path):
    root = tmp_path / "flat"
    write_split(root / "images", root / "labels", 18, seed=4, suffix=".png")
    memory, streamed = both(root, val_fraction=0.25, split_seed=3)  # a seeded split of one folder
    assert isinstance(streamed.train, DetectionFiles) and "streamed from disk (2 loader processes)" in streamed.source
    assert (memory.mean, memory.std, memory.classes) == (streamed.mean, streamed.std, streamed.classes)
    for seed in (0, 1):
        reference = epoch(memory.train, seed)
        assert len(reference) == 3   # 14 training images, batches of 4, the incomplete one dropped
        for workers in (0, 2):
            got = epoch(streamed.train, seed, workers)
            assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(reference, got))
    # the crops and flips did move something: an epoch differs from the plain images
    plain = list(iterate(memory.train, 4, shuffle=True, gen=torch.Generator().manual_seed(0), drop_last=True))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(plain, epoch(memory.train, 0)))
    for a, b in zip(iterate(memory.val, 3, shuffle=False), iterate(streamed.val, 3, shuffle=False)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_bad_label_fails_before_any_image_is_decoded(tmp_path):
    root = write_ultralytics_set(tmp_path / "set")
    label = sorted((root / "labels" / "val").iterdir())[1]
    label.write_text(label.read_text() + "0 0.5 0.5 0.2\n")
    for image in (root / "images" / "train").iterdir():
        image.write_bytes(b"no image at all")  # never read: the labels are checked first
    with pytest.raises(DataError, match=rf"{label.name}:\d+: expected 'class cx cy w h'"):
        load_detection_folder(str(root), 64, in_memory=False)


def test_an_unreadable_image_stops_a_streamed_epoch_in_one_line(tmp_path, monkeypatch):
    root = write_ultralytics_set(tmp_path / "set")
    broken = sorted((root / "images" / "train").iterdir())[5]
    broken.write_bytes(b"not a jpeg")
    files = folder.read_split(folder.find_yolo_source(root).train, 64, None)
    with pytest.raises(DataError) as e:
        epoch(files, 0, workers=2)
    assert str(e.value).startswith(f"{broken}: cannot read the image") and "\n" not in str(e.value)
    # pea-train on a set streamed from disk: still one line naming the file, exit 2
    from pea_deploy.cli.train import main

    monkeypatch.setattr(folder, "IN_MEMORY_BYTES", 0)
    result = CliRunner().invoke(main, ["shapes-det-yolo-pea-weighted-silu", "--dataset", "det-folder", "--data-dir",
                                       str(root), "--workers", "2", "--out", str(tmp_path / "run")])
    assert_one_error_line(result, "pea-train", 2, f"{broken.name}: cannot read the image")


def tiny_recipe(root):
    return load_recipe("shapes-det-yolo-pea-weighted-silu").with_overrides({
        "data.name": "det-folder", "data.dir": str(root), "data.batch_size": 4, "train.epochs": 2,
        "pea.initial_epochs": 0, "pea.transition_end": 1, "train.eval_batch_size": 4})


def run(recipe, out, data, **fit):
    with Trainer(recipe, out, data=data, progress=False, log=lambda m: None, resume=fit.pop("resume", False)) as t:
        return t.fit(**fit), t.model.state_dict(), t.history


def test_summary_and_compare_table_hold_map50(tmp_path):
    root = write_ultralytics_set(tmp_path / "set", train=8, val=4)
    recipe = tiny_recipe(root)
    _, _, history = run(recipe, tmp_path / "run", load_detection_folder(str(root), 64))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final_val_map50"] == history[-1]["val_map50"] and summary["final_val_map"] == history[-1]["val_map"]
    best = next(h for h in history if h["epoch"] == summary["best_epoch"])
    assert summary["best_val_map50"] == best["val_map50"] and summary["best_val_map"] == best["val_map"]
    # AP at IoU 0.5 is at least the mean AP over the thresholds 0.5 .. 0.95 (a looser match)
    assert summary["final_val_map50"] >= summary["final_val_map"]

    # pea-compare's table from finished runs (reused, not retrained): mAP@0.5 beside mAP@0.5:0.95
    settings = plan_settings(recipe, ("silu",), ("weighted",))
    for s in settings:
        (tmp_path / "cmp" / "runs" / s.slug / "seed0").mkdir(parents=True)
        shutil.copy(tmp_path / "run" / "summary.json", tmp_path / "cmp" / "runs" / s.slug / "seed0")
    results = run_comparison(recipe, tmp_path / "cmp", settings, seeds=1)
    assert all(r.reused and r.also == {"map50": summary["best_val_map50"]} for r in results)
    table = to_markdown(build_table(results))
    assert "| setting | best mAP@0.5:0.95 % (mean ± std) | mAP@0.5 % at that epoch (mean ± std) |" in table
    assert f"| {summary['best_val_map']:.2f} ± 0.00 | {summary['best_val_map50']:.2f} ± 0.00 |" in table


@pytest.mark.slow
def test_a_streamed_run_resumes_to_the_in_memory_run(tmp_path):
    root = write_ultralytics_set(tmp_path / "set", train=8, val=4)
    recipe = tiny_recipe(root)
    memory, streamed = both(root)
    whole, weights, history = run(recipe, tmp_path / "memory", memory)
    run(recipe, tmp_path / "streamed", streamed, until_epoch=1)
    resumed, resumed_weights, resumed_history = run(recipe, tmp_path / "streamed", streamed, resume=True)
    assert resumed["epochs"] == 2 and len(history) == 2
    scores = ("train_loss", "val_loss", "val_map", "val_map50")
    assert [[h[k] for k in scores] for h in resumed_history] == [[h[k] for k in scores] for h in history]
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)
    for key in ("final_val_map", "best_val_map", "final_val_map50", "best_val_map50"):
        assert resumed[key] == whole[key], key
