"""PEA and the hard swap inside Ultralytics' own trainer: a YOLOv8n built from its yaml, trained by
`YOLO.train` on a generated Roboflow-layout set, ends as a plain nn.ReLU checkpoint.

Runs in the Ultralytics venv (.ci/ultralytics-tests); skipped where ultralytics is not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# before ultralytics is imported: no network look-ups, settings in a throw-away folder
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="ultralytics-config-"))
pytest.importorskip("ultralytics.engine.trainer")  # a submodule: tests/ultralytics itself is no such package

import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402

from pea_deploy.errors import AlphaNotOneError  # noqa: E402
from pea_deploy.integrations.ultralytics import add_hard_swap_callbacks, add_pea_callbacks  # noqa: E402
from pea_deploy.pea import alphas, ensembles  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from yolo_set import write_yolo_set  # noqa: E402

TRAIN = {"imgsz": 64, "batch": 16, "workers": 0, "device": "cpu", "amp": False, "plots": False, "verbose": False,
         "exist_ok": True, "seed": 0}


def _loaded_without_pea_deploy(weights: Path) -> set[str]:
    """The module classes of `weights` as a process without pea_deploy sees them (it cannot import it)."""
    code = ("import sys; sys.modules['pea_deploy'] = None\n"
            "from ultralytics import YOLO\n"
            "m = YOLO(sys.argv[1])\n"
            "print(*sorted({type(x).__module__ + '.' + type(x).__name__ for x in m.model.modules()}))")
    done = subprocess.run([sys.executable, "-c", code, str(weights)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory) -> Path:
    return write_yolo_set(tmp_path_factory.mktemp("yolo-set"))


@pytest.fixture(scope="module")
def pea_run(tmp_path_factory, data_yaml):
    """3 epochs: alpha rises per batch over epochs 1-2 and is 1 from the end of epoch 2; what the
    trainer holds after each batch and epoch is recorded by callbacks registered after PEA's."""
    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml")
    callbacks = add_pea_callbacks(model, initial_epochs=0, transition_end=2)
    seen = {"batches": [], "epochs": [], "start": None}

    def at_start(trainer):
        net, ema = trainer.model, trainer.ema.ema
        seen["start"] = (len(ensembles(net)), len(ensembles(ema)),
                         set(map(id, ensembles(net).values())) & set(map(id, ensembles(ema).values())))

    def after_batch(trainer):  # after the optimizer step and ModelEMA.update
        seen["batches"].append((callbacks.batch_alpha, set(alphas(trainer.model).values()),
                                set(alphas(trainer.ema.ema).values())))

    def after_epoch(trainer):  # after validation and the trainer's save
        weights = Path(trainer.wdir)
        seen["epochs"].append({"best": (weights / "best.pt").exists(), "last": (weights / "last.pt").exists()})

    model.add_callback("on_train_start", at_start)
    model.add_callback("on_train_batch_end", after_batch)
    model.add_callback("on_fit_epoch_end", after_epoch)
    project = tmp_path_factory.mktemp("runs")
    model.train(data=str(data_yaml), epochs=3, project=str(project), name="pea", **TRAIN)
    return model, callbacks, seen, project / "pea" / "weights"


def test_pea_converts_the_shared_silu_of_model_and_ema_once_each(pea_run):
    _, _, seen, _ = pea_run
    on_model, on_ema, shared = seen["start"]
    # YOLOv8n's 57 SiLU slots are one nn.SiLU instance (Conv.default_act): one ensemble per network
    assert (on_model, on_ema) == (1, 1)
    assert not shared  # the EMA has its own ensemble, set to the same alpha


def test_alpha_is_the_schedules_on_model_and_ema_after_every_ema_update(pea_run):
    _, _, seen, _ = pea_run
    during = [b for b in seen["batches"] if b[1]]  # before the strip at the end of epoch 2
    assert len(during) == 8  # 64 images / batch 16 = 4 batches per epoch, 2 epochs of transition
    for alpha, on_model, on_ema in during:
        assert on_model == on_ema == {alpha}  # never an EMA average of alphas
    assert [b[0] for b in during] == [i / 8 for i in range(8)]
    assert all(not b[1] and not b[2] for b in seen["batches"][8:])  # stripped: no ensemble left


def test_no_checkpoint_is_written_below_alpha_one(pea_run):
    _, callbacks, seen, _ = pea_run
    assert [h["eligible"] for h in callbacks.history] == [False, True, True]
    assert seen["epochs"][0] == {"best": False, "last": False}
    assert seen["epochs"][1] == {"best": True, "last": True}


def test_best_pt_is_a_plain_relu_ultralytics_checkpoint(pea_run, data_yaml):
    _, _, _, weights = pea_run
    for name in ("best.pt", "last.pt"):
        classes = _loaded_without_pea_deploy(weights / name)
        assert "torch.nn.modules.activation.ReLU" in classes
        assert not any("SiLU" in c or c.startswith("pea_deploy") for c in classes), classes
    metrics = YOLO(str(weights / "best.pt")).val(data=str(data_yaml), imgsz=64, batch=16, device="cpu",
                                                  plots=False, verbose=False)
    assert 0.0 <= metrics.box.map <= 1.0


def test_refuses_a_run_too_short_for_alpha_one(tmp_path, data_yaml):
    model = YOLO("yolov8n.yaml")
    add_pea_callbacks(model, initial_epochs=0, transition_end=3)
    with pytest.raises(AlphaNotOneError, match="epoch 3"):
        model.train(data=str(data_yaml), epochs=2, project=str(tmp_path), name="short", **TRAIN)
    assert not (tmp_path / "short" / "weights" / "best.pt").exists()


def test_hard_swap_distilled_from_the_silu_checkpoint_ends_plain_relu(tmp_path, data_yaml):
    smooth = YOLO("yolov8n.yaml")
    smooth.train(data=str(data_yaml), epochs=1, project=str(tmp_path), name="silu", **TRAIN)
    silu_best = tmp_path / "silu" / "weights" / "best.pt"
    assert any("SiLU" in c for c in _loaded_without_pea_deploy(silu_best))
    model = YOLO(str(silu_best))
    callbacks = add_hard_swap_callbacks(model, bn_batches=2)
    # Ultralytics' own distillation: the student (swapped to ReLU) learns from the SiLU teacher too
    model.train(data=str(data_yaml), epochs=1, project=str(tmp_path), name="swap", distill_model=str(silu_best),
                **TRAIN)
    assert callbacks.bn_batches_used == 2
    classes = _loaded_without_pea_deploy(tmp_path / "swap" / "weights" / "best.pt")
    assert "torch.nn.modules.activation.ReLU" in classes
    assert not any("SiLU" in c or c.startswith("pea_deploy") for c in classes), classes


def test_pea_best_pt_exports_to_ethos_u55_all_on_the_npu(pea_run, data_yaml, tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("ethosu.vela")
    from pea_deploy.export import ExportOptions
    from pea_deploy.integrations.ultralytics_export import export_ultralytics

    _, _, _, weights = pea_run
    # This test is about the cut, the NPU placement and the rows. The few-epoch net scores 0.0 mAP on its
    # 16 parity images (measured with 1 and 2 torch threads), a score another CPU's float path may lift
    # by a few images, each worth points: --max-drop is off (100) and the gate is the output cosine
    # (default 0.99; measured 0.9964). docs/ultralytics.md holds a trained net's int8 mAP.
    options = ExportOptions(formats=("tflite",), calib_samples=16, parity_samples=16, latency_runs=2,
                            diagnose_samples=2, max_drop=100.0)
    result = export_ultralytics(weights / "best.pt", "ethos-u55", tmp_path / "export", data=data_yaml,
                                trust_pickle=True, head="raw", options=options)
    assert int(result.exit_code) == 0, [str(f) for f in result.failures]
    report = json.loads((result.out_dir / "report.json").read_text())
    vela = report["vela"]
    assert vela["cpu_operators"] == 0 and vela["npu_operators"] > 0
    # parity in mAP@0.5:0.95 and mAP@0.5, both against torch's, from one decode and NMS per artefact
    for row in report["parity"]:
        assert row["metric"] == "map" and set(row["also"]) == {"map50"}, row
        torch_row = report["parity"][0]
        assert row["also"]["map50"]["drop"] == pytest.approx(
            torch_row["also"]["map50"]["score"] - row["also"]["map50"]["score"], abs=1e-3)
    assert report["parity"][0]["also"]["map50"]["score"] >= report["parity"][0]["score"]  # 0.5 is the easiest IoU
    assert "| mAP@0.5:0.95 % | drop | mAP@0.5 % | drop |" in (result.out_dir / "report.md").read_text()
    assert_user_module_names(report["artefacts"]["model.int8.tflite"]["layer_errors"])


def assert_user_module_names(layer_errors: list[dict]) -> None:
    """Per-layer rows name Ultralytics modules as the user writes them (`model.22.cv2.0.2`): no
    wrapper prefix, no tracer spelling, and each Conv's shared activation by its own slot."""
    import re

    named = {e["module"] for e in layer_errors if e["module"]}
    assert named and not [m for m in named if not re.fullmatch(r"model\.\d+(\.\w+)*", m)], sorted(named)
    assert any(m.startswith("model.22.cv2.") for m in named) and any(m.startswith("model.22.cv3.") for m in named)
    assert len({m for m in named if m.endswith(".act")}) > 10  # one nn.ReLU instance, named per Conv


def test_decoded_head_onnx_rows_name_modules_as_the_user_writes_them(pea_run, data_yaml, tmp_path):
    """ONNX names modules by TorchScript's scopes, which skip the modules a wrapper does not call
    (DecodedHead -> RawHead -> the DetectionModel's layers): the rows still read `model.<index>...`."""
    from pea_deploy.export import ExportOptions
    from pea_deploy.integrations.ultralytics_export import export_ultralytics

    _, _, _, weights = pea_run
    options = ExportOptions(formats=("onnx",), calib_samples=8, parity_samples=8, latency_runs=1, diagnose_samples=2)
    result = export_ultralytics(weights / "best.pt", "relu-only", tmp_path / "export", data=data_yaml,
                                trust_pickle=True, head="decoded", options=options)
    report = json.loads((result.out_dir / "report.json").read_text())
    assert_user_module_names(report["artefacts"]["model.int8.onnx"]["layer_errors"])
    assert {"model.22.dfl.conv"} <= {e["module"] for e in report["artefacts"]["model.int8.onnx"]["layer_errors"]}


def test_map50_drop_alone_fails_the_export_gate():
    """--max-drop holds each reported score: an artefact whose mAP@0.5 falls more than it fails,
    though its mAP@0.5:0.95 holds (and the other way round)."""
    from pea_deploy.export.parity import ParityRow
    from pea_deploy.export.pipeline import _failures

    def row(name, score, map50):
        return ParityRow(name, "rt", 8, "map", score, None, 0.0, 60.0 - score, cosine=1.0,
                         also={"map50": {"score": map50, "drop": round(90.0 - map50, 4)}})

    reference = row("torch fp32", 60.0, 90.0)
    for score, map50, failing in ((59.5, 88.0, "mAP@0.5 88.00% is 2 points below torch fp32 (90.00%)"),
                                  (58.0, 89.5, "mAP@0.5:0.95 58.00% is 2 points below torch fp32 (60.00%)")):
        failures = _failures([reference, row("model.int8.tflite", score, map50)], {}, None, 1.0, 0.99, set())
        assert [f.message for f in failures] == [f"model.int8.tflite (rt) {failing}, more than --max-drop 1"]


def test_export_refuses_an_untrusted_pickle_in_one_line(pea_run, data_yaml, tmp_path):
    _, _, _, weights = pea_run
    done = subprocess.run([sys.executable, "-m", "pea_deploy.cli.export", "--ultralytics", str(weights / "best.pt"),
                           "--data", str(data_yaml), "--target", "ethos-u55", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--trust-pickle" in done.stderr
    assert not (tmp_path / "x").exists()


def test_host_decode_of_both_head_cuts_equals_ultralytics_own_inference(pea_run):
    from pea_deploy.integrations.ultralytics_export import load_ultralytics
    from pea_deploy.integrations.ultralytics_heads import DecodedHead, RawHead, decode_decoded, decode_raw

    _, _, _, weights = pea_run
    model, _ = load_ultralytics(weights / "best.pt", trust_pickle=True)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        raw_boxes, raw_scores = decode_raw(RawHead(model)(x), (64, 64))
        cut_boxes, cut_scores = decode_decoded(DecodedHead(model, 64)(x))
        model.model[-1].export = False
        own, _ = model(x)  # Ultralytics' inference: (B, 4 + classes, N), boxes cx cy w h
    own_boxes, own_scores = decode_decoded((own[:, :4], own[:, 4:]))
    # boxes are pixels in [0, 64]: float32 sums in another order differ by ~1e-5 px; 1e-3 px is no other decode
    for boxes in (raw_boxes, cut_boxes):
        torch.testing.assert_close(boxes, own_boxes, atol=1e-3, rtol=0)
    for scores in (raw_scores, cut_scores):
        torch.testing.assert_close(scores, own_scores, atol=1e-6, rtol=0)  # the same sigmoid of the same logits
