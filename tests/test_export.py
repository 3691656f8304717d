"""pea-export on real, small trained runs: real ONNX/TFLite files, run in onnxruntime and LiteRT."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from pea_deploy.cli.export import main
from pea_deploy.errors import ExportStepError, MissingDependency
from pea_deploy.export import (ExportOptions, OnnxRunner, TFLiteRunner, export_checkpoint, export_onnx,
                               export_tflite_int8, load_trained, quantize_onnx, strip_and_compare)
from pea_deploy.export.report import ExportReport
from pea_deploy.export.samples import load_splits, validation_inputs
from pea_deploy.export.steps import require
from pea_deploy.train import train
from pea_deploy.verify import load_profile, verify_model

from cli_checks import assert_one_error_line
from verify_models import DecomposedSiLU, tiny_cnn

SMOOTH_ONNX = {"Gelu", "Erf", "Sigmoid", "Tanh", "Softplus", "Mish", "Elu", "HardSigmoid", "HardSwish",
               "LeakyRelu", "PRelu", "Selu", "Celu", "Exp", "Log"}
needs_tflite = pytest.mark.skipif(not __import__("importlib").util.find_spec("litert_torch"),
                                  reason="pea-deploy[tflite] not installed")
needs_vela = pytest.mark.skipif(not __import__("importlib").util.find_spec("ethosu"),
                                reason="pea-deploy[vela] not installed")


# The trained run below scores 96.1-97.5 % top-1 on its 359 validation digits, the figure moving with
# the CPU's float path (training is not bit-identical across CPUs or thread counts). Post-training
# int8 of it keeps an output cosine of 0.9994-0.9996 and changes the prediction of 0 to 3 of those
# images, either way (measured over 5 seeds and 1 or 2 torch threads: drops -0.28 to 0.84 points).
# One image is 0.28 points, so the default --max-drop 1 rests on 4 images, a margin no training
# outcome guarantees; the tests here gate at 3 points (11 images). An int8 file that is really broken
# loses tens of points (calibrated on black images: 16-43 % top-1, cosine 0.25-0.49), and the fidelity
# checks below (cosine > 0.99, SQNR > 15 dB) catch a subtler break that the top-1 gate would not.
INT8_MAX_DROP = 3.0


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result, code, pattern):
    assert_one_error_line(result, "pea-export", code, pattern)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real PEA-GELU run on digits whose alpha reached 1 (8 epochs, ramp over epochs 1-4): trained
    far enough (about 98 % top-1) that int8 parity means something."""
    from pea_deploy.train import load_recipe

    recipe = load_recipe().with_overrides({"train.epochs": 8, "pea.initial_epochs": 1, "pea.transition_end": 4,
                                           "model.width": 0.25})
    out = tmp_path_factory.mktemp("run")
    train(recipe, out, progress=False, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def unfinished_run(tmp_path_factory):
    """Stopped in the transition: 2 of the 4 epochs the ramp needs."""
    from pea_deploy.train import load_recipe

    from pea_deploy.train.loop import Trainer

    recipe = load_recipe().with_overrides({"train.epochs": 4, "pea.initial_epochs": 0, "pea.transition_end": 4,
                                           "model.width": 0.125})
    out = tmp_path_factory.mktemp("unfinished")
    Trainer(recipe, out, progress=False, log=lambda m: None).fit(until_epoch=2)
    return out


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """The full export (ONNX + TFLite when litert-torch is installed) against ethos-u55."""
    import importlib.util

    formats = ("onnx", "tflite") if importlib.util.find_spec("litert_torch") else ("onnx",)
    out = tmp_path_factory.mktemp("export")
    return export_checkpoint(run_dir, "ethos-u55", out, ExportOptions(formats=formats, latency_runs=5,
                                                                      max_drop=INT8_MAX_DROP))


def test_refuses_alpha_below_one(unfinished_run, tmp_path):
    out = tmp_path / "out"
    r = invoke(unfinished_run, "--target", "relu-only", "--out", out)
    one_error_line(r, 3, "alpha < 1")
    line = r.stderr.strip()
    assert "alpha=0.5" in line and "layer1.0.relu" in line         # module path and its alpha
    assert "transition ends at epoch 4" in line and "is epoch 2" in line
    assert not out.exists()                                           # nothing written
    r = invoke(unfinished_run, "--target", "relu-only", "--out", out, "--checkpoint", "last")
    assert r.exit_code == 3


def test_upper_limit_run_is_refused(tmp_path):
    from pea_deploy.train import load_recipe

    recipe = load_recipe().with_overrides({"train.epochs": 1, "pea.initial_epochs": 0, "pea.transition_end": 1,
                                           "model.width": 0.125, "pea.mode": "act"})
    train(recipe, tmp_path / "up", progress=False, log=lambda m: None)
    one_error_line(invoke(tmp_path / "up", "--target", "relu-only", "--out", tmp_path / "o"), 2,
                   "upper-limit run (gelu only")
    assert not (tmp_path / "o").exists()


def test_stripped_net_equals_trained_net(run_dir, exported):
    trained = load_trained(run_dir)
    val = validation_inputs(trained, load_splits(trained))
    stripped, diff = strip_and_compare(trained.model, val.images)
    assert diff == 0.0 and exported.report.strip["max_abs_diff"] == 0.0
    assert not any("Ensemble" in type(m).__name__ for m in stripped.modules())
    assert any(isinstance(m, nn.ReLU) for m in stripped.modules())
    assert any("Ensemble" in type(m).__name__ for m in trained.model.modules())  # the original is kept


def test_fp32_onnx_is_relu_only_with_bn_folded(exported):
    model = onnx.load(exported.out_dir / "model.fp32.onnx")
    onnx.checker.check_model(model, full_check=True)
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Relu"] > 0 and not (set(ops) & SMOOTH_ONNX)
    assert "BatchNormalization" not in ops
    assert model.opset_import[0].version == 17
    assert not (exported.out_dir / "model.fp32.onnx.data").exists()
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 1, 8, 8]


def test_int8_onnx_has_qdq_and_int8_weights(exported):
    model = onnx.load(exported.out_dir / "model.int8.onnx")
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    inits = {i.name: i for i in model.graph.initializer}
    conv_weights = [n.input[1] for n in model.graph.node if n.op_type == "Conv"]
    dq_of = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for w in conv_weights:
        assert inits[dq_of[w]].data_type == onnx.TensorProto.INT8
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert all(z.data_type == onnx.TensorProto.INT8 for z in zero_points)  # int8 activations (profile)
    assert verify_model(exported.out_dir / "model.int8.onnx", load_profile("ethos-u55")).passed


@needs_tflite
def test_tflite_is_full_integer_nhwc(exported):
    from ai_edge_litert import schema_py_generated as s

    path = exported.out_dir / "model.int8.tflite"
    model = s.ModelT.InitFromObj(s.Model.GetRootAsModel(path.read_bytes(), 0))
    g = model.subgraphs[0]
    names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    assert names[g.tensors[g.inputs[0]].type] == "INT8" and names[g.tensors[g.outputs[0]].type] == "INT8"
    assert list(g.tensors[g.inputs[0]].shape) == [1, 8, 8, 1]                       # NHWC
    assert {names[t.type] for t in g.tensors} <= {"INT8", "INT32"}                   # no float tensor
    ops = {model.operatorCodes[op.opcodeIndex].builtinCode for op in g.operators}
    assert not ops & {s.BuiltinOperator.QUANTIZE, s.BuiltinOperator.DEQUANTIZE}
    assert verify_model(path, load_profile("ethos-u55")).passed


def test_parity_table_comes_from_real_runs(run_dir, exported):
    # the gated row of each artefact: its int8 semantics on any host (later rows: this CPU, TFLM)
    rows = {}
    for r in exported.report.to_dict()["parity"]:
        if r["gate"]:
            rows.setdefault(r["artefact"], r)
    trained = load_trained(run_dir)
    val = validation_inputs(trained, load_splits(trained))
    labels = val.labels.numpy()
    runners = {"model.int8.onnx": OnnxRunner(exported.out_dir / "model.int8.onnx")}
    if "model.int8.tflite" in rows:
        runners["model.int8.tflite"] = TFLiteRunner(exported.out_dir / "model.int8.tflite")
    for name, runner in runners.items():
        top1 = 100.0 * float((runner(val.images.numpy()).argmax(1) == labels).mean())
        assert rows[name]["metric"] == "top1" and rows[name]["score"] == pytest.approx(top1, abs=1e-3)
        assert rows[name]["samples"] == len(labels)
        assert rows[name]["drop"] <= INT8_MAX_DROP           # int8 within a few images of fp32
    assert rows["model.fp32.onnx"]["max_abs_diff"] < 1e-3 and rows["model.fp32.onnx"]["agreement"] == 100.0
    assert rows["model.int8.onnx"]["max_abs_diff"] > 0       # int8 is really int8
    assert rows["model.int8.onnx"]["runtime"] == "onnxruntime, QDQ reference"
    runtimes = [(r["artefact"], r["runtime"], r["gate"]) for r in exported.report.to_dict()["parity"]]
    host = [r for r in runtimes if not r[2]]
    assert len(host) == 1 and host[0][0] == "model.int8.onnx" and "fused int8 kernels of this CPU" in host[0][1]
    if "model.int8.tflite" in rows:
        assert rows["model.int8.tflite"]["runtime"] == "LiteRT reference kernels"
        assert ("model.int8.tflite", "TFLite Micro", True) in runtimes       # ethos-u55 names TFLM


@needs_tflite
def test_tflite_micro_row_and_arena(exported):
    report = exported.report.to_dict()
    tflm = next(r for r in report["parity"] if r["runtime"] == "TFLite Micro")
    ref = next(r for r in report["parity"] if r["runtime"] == "LiteRT reference kernels")
    # TFLM's reference kernels compute TFLite's integer semantics: measured 8 of 1797 digits
    # outputs 1 LSB apart from LiteRT's reference kernels, so top-1 can move by one image at most
    assert abs(tflm["score"] - ref["score"]) <= 100.0 / tflm["samples"] + 1e-9
    assert tflm["cosine"] > 0.99
    arena = report["artefacts"]["model.int8.tflite"]["tflite_micro"]["arena_bytes"]
    # the arena holds at least the largest activation tensor (and below TFLM's 10x-model default)
    from ai_edge_litert import schema_py_generated as s

    data = (exported.out_dir / "model.int8.tflite").read_bytes()
    g = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0)).subgraphs[0]
    largest = max(int(np.prod(g.tensors[i].shape)) for op in g.operators for i in op.outputs)  # int8 bytes
    assert largest <= arena < 10 * report["artefacts"]["model.int8.tflite"]["bytes"]
    assert "tensor arena" in (exported.out_dir / "report.md").read_text()


def test_reports_describe_the_artefacts(exported):
    report = json.loads((exported.out_dir / "report.json").read_text())
    assert report["verdict"] == "PASSED" and report["exit_code"] == 0 and report["failures"] == []
    assert ExportReport.from_dict(report).to_dict() == report             # one typed reader and writer
    for name, a in report["artefacts"].items():
        data = (exported.out_dir / name).read_bytes()
        assert a["sha256"] == hashlib.sha256(data).hexdigest() and a["bytes"] == len(data)
        assert a["latency_batch1_1thread"]["median_ms"] > 0
    for pkg in ("torch", "onnx", "onnxruntime", "ai-edge-litert"):
        assert report["versions"][pkg]
    assert report["target"]["name"] == "ethos-u55"
    for row in report["parity"][1:]:
        assert row["cosine"] > 0.99 and row["sqnr_db"] > 15, row    # measured 0.9995 / 29.6 dB
    for name in ("model.int8.onnx", "model.int8.tflite"):
        if name in report["artefacts"]:
            errors = report["artefacts"][name]["layer_errors"]
            assert errors and errors[0]["module"] and errors[0]["local_sqnr_db"] is not None
            local = [e["local_sqnr_db"] for e in errors if e["local_sqnr_db"] is not None]
            assert local == sorted(local)                                 # worst first
    md = (exported.out_dir / "report.md").read_text()
    assert "| model.int8.onnx | onnxruntime, QDQ reference |" in md and "PASSED" in md
    assert report["host"]["int8_isa"] and isinstance(report["host"]["notes"], list)
    assert "## Per-layer int8 error: `model.int8.onnx`" in md
    assert not [p for p in exported.out_dir.iterdir() if p.name.startswith(".")]  # no staging left


@needs_tflite
@needs_vela
def test_vela_places_every_operator_on_the_npu(exported):
    vela = exported.report.vela
    assert vela["accelerator"] == "ethos-u55-128" and vela["all_on_npu"]
    assert vela["npu_operators"] > 0 and vela["inference_time_ms"] > 0


@needs_tflite
@needs_vela
def test_vela_system_config_changes_the_estimate(exported):
    from pea_deploy.export.vela import compile_for_ethos_u

    tflite = exported.out_dir / "model.int8.tflite"
    slow = compile_for_ethos_u(tflite, "ethos-u55-128", system_config="Ethos_U55_Deep_Embedded",
                               memory_mode="Shared_Sram")
    fast = compile_for_ethos_u(tflite, "ethos-u55-128", system_config="Ethos_U55_High_End_Embedded",
                               memory_mode="Shared_Sram")
    assert (slow.system_config, fast.memory_mode) == ("Ethos_U55_Deep_Embedded", "Shared_Sram")
    assert slow.inference_time_ms > fast.inference_time_ms          # Vela's own numbers for its configs
    assert exported.report.vela["system_config"] == "Internal-Default"


@needs_vela
def test_unknown_vela_system_config_is_one_line(run_dir, tmp_path):
    one_error_line(invoke(run_dir, "--target", "ethos-u55", "--vela-memory-mode", "Shared_SRAM",
                          "--out", tmp_path / "o"), 2, "did you mean 'Shared_Sram'")
    assert not (tmp_path / "o").exists()


@needs_vela
def test_vela_reports_cpu_fallback(tmp_path):
    from pea_deploy.export.vela import compile_for_ethos_u

    from verify_models import write_tflite

    float_model = write_tflite(tmp_path / "f.tflite", [("CONV_2D", "RELU"), ("CONV_2D", "NONE")])
    result = compile_for_ethos_u(float_model, "ethos-u55-128")
    assert result.cpu_operators > 0 and not result.all_on_npu and result.cpu_fallback


def test_cli_end_to_end_onnx_uint8(run_dir, tmp_path):
    out = tmp_path / "x"
    r = invoke(run_dir, "--target", "relu6", "--out", out, "--formats", "onnx", "--activation-dtype", "uint8",
               "--calib-method", "entropy", "--calib-samples", "64", "--latency-runs", "3", "--max-drop", INT8_MAX_DROP)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().splitlines()[-1].startswith("PASSED | target relu6 |")
    assert sorted(p.name for p in out.iterdir()) == ["model.fp32.onnx", "model.int8.onnx", "report.json",
                                                    "report.md"]
    model = onnx.load(out / "model.int8.onnx")
    inits = {i.name: i for i in model.graph.initializer}
    zps = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zps and all(z.data_type == onnx.TensorProto.UINT8 for z in zps)
    settings = json.loads((out / "report.json").read_text())["settings"]
    assert settings["calibration"]["samples"] == 64 and settings["activation_dtype"] == "uint8"


# Quantization-aware fine-tuning retrains the weights: SGD at --qat-lr 1e-3 moves the run's top-1 by
# a few of its 359 validation images, either way (against post-training int8 of the same run: one
# epoch -1.95 to +0.84 points over 5 seeds and 1 or 2 torch threads; the two epochs this test runs
# +0.84 at 1 and at 2 threads; on the Xeon of issue 32 one epoch ended 1.11 points below torch and failed the
# default --max-drop 1). 5 points is 18 images. A QAT that breaks the net (the graph not trained,
# scales that clip) loses tens of points: chance is 10 %.
QAT_TOLERANCE = 5.0


@needs_tflite
def test_cli_quantization_aware_tflite(run_dir, exported, tmp_path):
    """--qat-epochs 2: two epochs of fake-int8 fine-tuning over the run's training split, each logged
    with its mean loss; the TFLite written from the fine-tuned graph, gated on top-1 alone (its
    outputs moved from torch's on purpose) and scoring no worse than post-training int8."""
    steps = len(load_splits(load_trained(run_dir)).train) // 64    # --qat-batch 64, the last partial batch dropped
    out = tmp_path / "qat"
    r = invoke(run_dir, "--target", "relu6", "--out", out, "--formats", "tflite", "--qat-epochs", "2",
               "--max-drop", QAT_TOLERANCE, "--latency-runs", "1", "--diagnose")
    assert r.exit_code == 0, r.output
    logged = re.findall(r"quantization-aware training epoch (\d)/2: mean loss (\S+) over (\d+) steps", r.stderr)
    assert [(e, int(n)) for e, _, n in logged] == [("1", steps), ("2", steps)], r.stderr
    # the fine-tuned net starts trained: its QAT loss measured 0.16-0.22 per epoch (3 seeds, 1 or 2
    # torch threads), 5x below half of chance's cross-entropy (ln 10, a net that knows nothing), which
    # a QAT graph that does not learn stays near
    assert all(0 < float(loss) < math.log(10) / 2 for _, loss, _ in logged), logged
    assert "## Per-layer int8 error: `model.int8.tflite`" in r.stderr          # --diagnose prints it
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["calibration"]["tflite_qat"] == {"epochs": 2, "lr": 1e-3, "batch": 64}
    torch_row, qat = report["parity"]
    assert (torch_row["artefact"], qat["artefact"], qat["runtime"]) == ("torch fp32", "model.int8.tflite",
                                                                     "LiteRT reference kernels")
    assert qat["gate"] and qat["samples"] == torch_row["samples"] == exported.report.strip["samples"]
    ptq = next(r for r in exported.report.to_dict()["parity"] if r["runtime"] == "LiteRT reference kernels")
    assert qat["score"] >= ptq["score"] - QAT_TOLERANCE, (qat["score"], ptq["score"])
    assert report["verdict"] == "PASSED" and report["artefacts"]["model.int8.tflite"]["verify"]["verdict"] == "PASSED"
    assert "quantization-aware fine-tuning 2 epoch(s)" in (out / "report.md").read_text()


def test_bad_calibration_data_fails_parity_with_exit_4(run_dir, tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    # black images: int8 ranges fitted to them clip every real activation (measured 16-43 % top-1,
    # 54-81 points below torch, cosine 0.25-0.49: far past both gates whatever the training outcome)
    for i in range(8):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(calib / f"{i}.png")
    out = tmp_path / "out"
    r = invoke(run_dir, "--target", "relu-only", "--out", out, "--formats", "onnx", "--calib-data", calib,
               "--calib-samples", "8", "--latency-runs", "1")
    assert r.exit_code == 4, r.output
    assert "parity: model.int8.onnx" in r.stderr
    assert "## Per-layer int8 error: `model.int8.onnx`" in r.stderr   # a failed parity shows where
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "FAILED" and report["exit_code"] == 4
    assert (out / "model.int8.onnx").exists()  # complete artefacts stay for inspection


def test_profile_violation_fails_with_exit_1(run_dir, tmp_path):
    profile = tmp_path / "no-add.toml"
    profile.write_text('name = "no-add"\ndescription = "d"\nbased_on = "b"\n[onnx]\n'
                       'ops = ["Conv", "Gemm", "GlobalAveragePool", "Flatten", "Reshape", "QuantizeLinear", '
                       '"DequantizeLinear"]\n')
    out = tmp_path / "out"
    r = invoke(run_dir, "--profile", profile, "--out", out, "--formats", "onnx", "--latency-runs", "1")
    assert r.exit_code == 1, r.output
    assert "verify: model.int8.onnx" in r.stderr and "op.unsupported" in r.stderr
    assert json.loads((out / "report.json").read_text())["failures"]


def test_a_killed_export_leaves_no_staging_directory_behind_the_next_one(run_dir, tmp_path):
    """SIGKILL cannot be cleaned up after; the next export into the same directory sweeps what a dead
    export left (and leaves a live one's alone)."""
    import os
    import signal
    import subprocess
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pea_deploy.cli.export", str(run_dir), "--target", "relu-only",
                             "--out", str(out), "--formats", "onnx", "--latency-runs", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob(".pea-export-*/.owner")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = list(out.glob(".pea-export-*"))
    assert left, "the export was not caught while building"
    live = out / ".pea-export-live"
    live.mkdir()
    (live / ".owner").write_text(f"{__import__('socket').gethostname()} {os.getpid()}\n")  # this process: alive
    r = invoke(run_dir, "--target", "relu-only", "--out", out, "--formats", "onnx", "--latency-runs", "1",
               "--max-drop", INT8_MAX_DROP)
    assert r.exit_code == 0, r.output
    assert not any(p.exists() for p in left) and live.exists()


def test_bad_inputs_give_one_line_and_no_artefacts(run_dir, tmp_path):
    out = tmp_path / "out"
    one_error_line(invoke(tmp_path / "missing.pt", "--target", "relu-only", "--out", out), 2, "does not exist")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    one_error_line(invoke(foreign, "--target", "relu-only", "--out", out), 2, "not a pea-deploy checkpoint")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint")
    one_error_line(invoke(corrupt, "--target", "relu-only", "--out", out), 2, "not a readable checkpoint")
    one_error_line(invoke(run_dir, "--target", "ethos_u55", "--out", out), 2, "did you mean 'ethos-u55'")
    one_error_line(invoke(run_dir, "--target", "relu-only", "--out", out, "--formats", "onnx,coreml"), 2,
                   "unknown format 'coreml'")
    one_error_line(invoke(run_dir, "--target", "relu-only", "--out", out, "--calib-method", "kl"), 2,
                   "unknown calibration method")
    one_error_line(invoke(run_dir, "--target", "relu-only", "--out", out, "--max-drop", "-1"), 2, "--max-drop")
    few = tmp_path / "few"
    few.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(few / "a.png")
    one_error_line(invoke(run_dir, "--target", "relu-only", "--out", out, "--calib-data", few), 2,
                   "holds 1 image(s), --calib-samples asks for 256")
    one_error_line(invoke(run_dir, "--target", "relu-only", "--out", out, "--calib-data", tmp_path / "nope"), 2,
                   "does not exist")
    assert not out.exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_error_line(invoke(run_dir, "--target", "relu-only", "--out", blocker / "sub", "--formats", "onnx"), 2,
                   "not writable")


def test_failing_converter_step_is_named(tmp_path):
    class Exits(nn.Module):
        def forward(self, x):
            sys.exit(7)  # some converters end the process on bad input

    with pytest.raises(ExportStepError, match=r"ONNX export \(torch.onnx, opset 17\) failed: SystemExit"):
        export_onnx(Exits(), torch.zeros(1, 1, 4, 4), tmp_path / "m.onnx", 17)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ExportStepError, match="reading bad.onnx failed: DecodeError"):
        (tmp_path / "bad.onnx").write_bytes(b"junk")
        quantize_onnx(tmp_path / "bad.onnx", tmp_path / "q.onnx", torch.zeros(2, 1, 4, 4))
    assert not (tmp_path / "q.onnx").exists()


def test_missing_extra_names_the_pip_extra():
    with pytest.raises(MissingDependency, match=r"pip install 'pea-deploy\[tflite\]'"):
        require("litert_torch_not_installed_anywhere", "the int8 TFLite export", "tflite")
    require("onnx", "anything", "none")  # present: no error


@needs_tflite
@pytest.mark.parametrize("act, expected", [(nn.GELU(), "GELU"), (DecomposedSiLU(), "LOGISTIC")])
def test_converter_made_tflite_with_smooth_activation_is_rejected(tmp_path, act, expected):
    """verify-ops on TFLite files that litert-torch really produced, not hand-written flatbuffers."""
    net = tiny_cnn(act)
    calib = torch.randn(4, 3, 16, 16)
    path = export_tflite_int8(net, calib, tmp_path / "m.tflite")
    report = verify_model(path, load_profile("edgetpu"))
    assert not report.passed
    assert any(v.op == expected and v.reason_code.startswith("activation") for v in report.violations)
    relu = export_tflite_int8(tiny_cnn(nn.ReLU()), calib, tmp_path / "r.tflite")
    assert verify_model(relu, load_profile("edgetpu")).passed
