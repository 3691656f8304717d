"""Issue 22 part 4: the int8 ExecuTorch program (.pte, XNNPACK delegate): built by executorch itself,
run in its runtime, its delegate graph read back by the op check, and the whole pea-export with it."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from pea_deploy.cli.verify_ops import main as verify_main
from pea_deploy.verify import load_profile, verify_model

from test_int8_reference import QEMU, needs_qemu
from verify_models import DecomposedSiLU, tiny_cnn

pytestmark = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                reason="pea-deploy[executorch] not installed")


def mobile_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    from pea_deploy.export import write_pte, xnnpack_quantize

    calib = torch.randn(32, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    quantized = xnnpack_quantize(mobile_cnn(), calib)
    path = write_pte(quantized, calib[:1], tmp_path_factory.mktemp("pte") / "m.pte")
    return path, quantized


def _output_scale(quantized) -> float:
    """The scale of the last quantize node: one LSB of the program's int8 output."""
    q = [n for n in quantized.graph.nodes if n.op == "call_function" and "quantize_per_tensor" in str(n.target)
         and "dequantize" not in str(n.target)]
    return float(q[-1].args[1])


def test_runtime_is_within_one_lsb_of_the_fake_quantized_graph(program):
    from pea_deploy.export import ExecuTorchRunner

    path, quantized = program
    x = torch.randn(24, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = torch.cat([quantized(x[i:i + 1]) for i in range(len(x))]).numpy()
    got = ExecuTorchRunner(path)(x.numpy())
    assert got.shape == (24, 10)
    # requantization rounds float sums that XNNPACK accumulates in another order: at most one step
    # of the output grid apart, never more (a wrong scale or a saturating kernel is many steps)
    lsb = _output_scale(quantized)
    assert np.abs(got - expected).max() <= lsb * 1.01
    assert (np.abs(got - expected) > lsb * 0.01).mean() < 0.1  # almost every value exact


def test_op_check_reads_the_xnnpack_delegate_graph(program):
    path, _ = program
    report = verify_model(path, load_profile("xnnpack"))
    assert report.passed, report.violations
    assert report.format == "pte"
    # the ReLUs are the convolutions' fused output clamps, read from the delegate graph; the ReLU6
    # after conv + BatchNorm stays a clamp of its own (XNNPACK's quantizer fuses no hardtanh), 0..6
    assert report.op_counts.get("XNNConv2d+RELU") == 1 and report.op_counts.get("XNNDepthwiseConv2d+RELU") == 1
    assert report.op_counts.get("XNNClamp") == 1
    assert report.op_counts.get("XNNConvert") == 2  # float in -> int8, int8 -> float out, at the delegate's edge
    assert "XNNFullyConnected" in report.op_counts
    # a relu-only target holds the same program to plain ReLU
    relu_only = dataclasses.replace(load_profile("xnnpack"), activations=frozenset({"relu"}))
    codes = {v.reason_code for v in verify_model(path, relu_only).violations}
    assert codes == {"activation.relu6"}


@pytest.mark.parametrize("act, op", [(nn.GELU(), "XNNGelu"), (DecomposedSiLU(), "XNNSigmoid")])
def test_smooth_activations_in_a_program_are_rejected(tmp_path, act, op):
    from pea_deploy.export import export_pte_int8

    path = export_pte_int8(tiny_cnn(act), torch.randn(8, 3, 16, 16), tmp_path / "m.pte")
    report = verify_model(path, load_profile("xnnpack"))
    assert not report.passed
    found = [v for v in report.violations if v.reason_code.startswith("activation")]
    assert found and all(v.op == op for v in found), report.violations
    assert "ReLU policy" in found[0].message  # XNNPACK runs it; pea-deploy's policy rejects it


def test_npu_profiles_refuse_a_program_in_one_finding(program, tmp_path):
    path, _ = program
    report = verify_model(path, load_profile("ethos-u55"))
    assert [v.reason_code for v in report.violations] == ["format.not_targeted"]
    assert "--target xnnpack" in report.violations[0].message
    bad = tmp_path / "bad.pte"
    bad.write_bytes(path.read_bytes()[:200])
    result = CliRunner().invoke(verify_main, ["--target", "xnnpack", str(bad)])
    assert result.exit_code == 2, result.output
    assert "corrupt ExecuTorch program" in result.output and "Traceback" not in result.output


_EMULATED = textwrap.dedent("""
    import sys
    import numpy as np
    from pea_deploy.export.executorch_pte import ExecuTorchRunner
    np.save(sys.argv[2], ExecuTorchRunner(sys.argv[1])(np.load(sys.argv[3])))
""")


@needs_qemu
def test_program_computes_the_same_bytes_on_an_avx2_only_cpu(program, tmp_path):
    """Where onnxruntime's fused int8 kernels saturate (qemu's Haswell: AVX2, no VNNI), XNNPACK's
    int8 kernels give this machine's bytes: the .pte row gates on any build host."""
    from pea_deploy.export import ExecuTorchRunner

    path, _ = program
    x = np.random.default_rng(3).normal(0, 2, size=(8, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "PEA_DEPLOY_CPU_KERNELS": "0"}
    r = subprocess.run([QEMU, "-cpu", "Haswell", sys.executable, "-c", _EMULATED, str(path), str(tmp_path / "y.npy"),
                        str(tmp_path / "x.npy")], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "y.npy"), ExecuTorchRunner(path)(x))


def test_pea_export_writes_checks_and_gates_the_program(tmp_path):
    from pea_deploy.export import ExportOptions, export_checkpoint
    from pea_deploy.train import load_recipe, train

    recipe = load_recipe().with_overrides({"train.epochs": 3, "pea.initial_epochs": 1, "pea.transition_end": 2,
                                           "model.width": 0.125})
    train(recipe, tmp_path / "run", progress=False, log=lambda m: None)
    result = export_checkpoint(tmp_path / "run", "ethos-u55", tmp_path / "out",
                               ExportOptions(formats=("pte",), latency_runs=2, max_drop=100, min_cosine=0.9))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.int8.pte", "report.json", "report.md"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    row = next(r for r in report["parity"] if r["artefact"] == "model.int8.pte")
    assert row["runtime"] == "ExecuTorch, XNNPACK" and row["gate"] is True
    assert row["cosine"] > 0.9 and row["samples"] == report["parity"][0]["samples"]
    entry = report["artefacts"]["model.int8.pte"]
    # checked as what it is, a CPU program, held to the target's activations
    assert entry["verify"]["profile"] == "xnnpack" and entry["verify"]["verdict"] == "PASSED"
    assert entry["runtime"] == "ExecuTorch, XNNPACK" and report["versions"]["executorch"]
    assert result.verdict == "PASSED"
