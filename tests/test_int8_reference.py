"""Issue 22: int8 parity on the artefact's own semantics, the same on every build machine.

A hand-built QDQ ONNX model whose int8 products saturate onnxruntime's u8s8 x86 kernels on CPUs
without VNNI (two 255*127 products summed exceed int16) is run by the reference runner and checked
against the QDQ semantics computed here in numpy; under qemu-user emulating an AVX2-only CPU
(Haswell) the reference runner gives the same bytes, while the fused kernels give other numbers.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pea_deploy.errors import ConfigError
from pea_deploy.export.host_cpu import int8_isa
from pea_deploy.export.runtimes import OnnxRunner

X_SCALE, Y_SCALE, Y_ZERO = 0.02, 0.5, -128
C_IN, C_OUT = 8, 4


def _weights() -> tuple[np.ndarray, np.ndarray]:
    """int8 1x1 conv weights (out, in, 1, 1) with per-channel scales: channel 0 all +127 (the
    saturating case for inputs at +127), the others mixed signs."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(C_OUT, C_IN, 1, 1)).astype(np.int8)
    w[0] = 127
    return w, np.array([0.01, 0.02, 0.005, 0.03], np.float32)


def qdq_model(path) -> None:
    """x -> Q -> DQ -> Conv(DQ(w int8, per channel), DQ(bias int32)) -> Relu -> Q -> DQ -> y."""
    w, w_scale = _weights()
    bias = np.array([10, -20, 0, 5], np.int32)  # in units of X_SCALE * w_scale, as QDQ biases are
    inits = [
        numpy_helper.from_array(np.array(X_SCALE, np.float32), "xs"), numpy_helper.from_array(np.array(0, np.int8), "xz"),
        numpy_helper.from_array(np.array(Y_SCALE, np.float32), "ys"),
        numpy_helper.from_array(np.array(Y_ZERO, np.int8), "yz"),
        numpy_helper.from_array(w, "w"), numpy_helper.from_array(w_scale, "ws"),
        numpy_helper.from_array(np.zeros(C_OUT, np.int8), "wz"),
        numpy_helper.from_array(bias, "b"), numpy_helper.from_array(X_SCALE * w_scale, "bs"),
        numpy_helper.from_array(np.zeros(C_OUT, np.int32), "bz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
        helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bd"], axis=0),
        helper.make_node("Conv", ["xd", "wd", "bd"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("QuantizeLinear", ["r", "ys", "yz"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C_IN, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C_OUT, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def qdq_by_hand(x: np.ndarray) -> np.ndarray:
    """The QDQ semantics in exact integer arithmetic: int32 accumulation of int8 products, then one
    rescale, ReLU and requantization (round half to even, as QuantizeLinear)."""
    w, w_scale = _weights()
    bias = np.array([10, -20, 0, 5], np.int64)
    xq = np.clip(np.round(x / X_SCALE), -128, 127).astype(np.int64)                    # zero point 0
    acc = np.einsum("nchw,oc->nohw", xq, w[:, :, 0, 0].astype(np.int64)) + bias[None, :, None, None]
    real = np.maximum(acc * (X_SCALE * w_scale.astype(np.float64))[None, :, None, None], 0.0)
    yq = np.clip(np.round(real / Y_SCALE) + Y_ZERO, -128, 127)
    return ((yq - Y_ZERO) * Y_SCALE).astype(np.float32)


def inputs() -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.uniform(-2.5, 2.5, size=(6, C_IN, 4, 4)).astype(np.float32)
    x[0] = 127 * X_SCALE          # every product of channel 0 is 127*127: u8 255 * s8 127 in pairs
    return x


def test_reference_runner_computes_the_qdq_semantics(tmp_path):
    path = tmp_path / "qdq.onnx"
    qdq_model(path)
    x = inputs()
    expected = qdq_by_hand(x)
    got = OnnxRunner(path, semantics="reference")(x)
    # Float32 sums of exact grid values differ from the int64 sums by at most ~1e-7 relative, which
    # moves a requantization only when the real value lies within that of a rounding tie: at most
    # one output step (Y_SCALE), on a rare element. Every element here is measured equal.
    assert np.abs(got - expected).max() <= Y_SCALE
    assert np.mean(got == expected) >= 0.99
    # image 0, channel 0: (8 * 127 * 127 + 10) * 0.02 * 0.01 = 25.81 -> 52 steps of 0.5 = 26.0
    assert np.all(got[0, 0] == 26.0)
    assert OnnxRunner(path, semantics="reference").kind == "onnxruntime, QDQ reference"


def test_fused_runner_names_this_cpu(tmp_path):
    path = tmp_path / "qdq.onnx"
    qdq_model(path)
    fused = OnnxRunner(path, semantics="fused")
    assert fused.kind == f"onnxruntime, fused int8 kernels of this CPU ({int8_isa()})"
    out = fused(inputs())
    if not int8_isa().saturates:   # VNNI (or not x86): the fused kernels keep every int32 sum
        assert np.abs(out - qdq_by_hand(inputs())).max() <= Y_SCALE
    with pytest.raises(ValueError, match="semantics"):
        OnnxRunner(path, semantics="fast")


def test_isa_names():
    base = {"AVX2": True, "AVX512BW": False, "AVX512VNNI": False}
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the ISA names are x86's")
    assert int8_isa(base, set()).name == "AVX2 (no VNNI)" and int8_isa(base, set()).saturates
    assert int8_isa(base, {"avx_vnni"}).name == "AVX-VNNI" and not int8_isa(base, {"avx_vnni"}).saturates
    assert int8_isa({**base, "AVX512BW": True}, set()).name == "AVX-512 (no VNNI)"
    assert not int8_isa({**base, "AVX512BW": True, "AVX512VNNI": True}, set()).saturates


QEMU = shutil.which("qemu-x86_64")
needs_qemu = pytest.mark.skipif(QEMU is None or platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="qemu-user (qemu-x86_64) emulates an AVX2-only CPU; apt-get install qemu-user")

_EMULATED = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path[:0] = sys.argv[3:]
    from test_int8_reference import inputs
    from pea_deploy.export.host_cpu import int8_isa
    from pea_deploy.export.runtimes import OnnxRunner
    path, out = sys.argv[1], sys.argv[2]
    np.savez(out, isa=int8_isa().name, reference=OnnxRunner(path, semantics="reference")(inputs()),
             fused=OnnxRunner(path, semantics="fused")(inputs()))
""")


@needs_qemu
def test_reference_semantics_are_the_same_on_an_avx2_only_cpu(tmp_path):
    """The build-machine dependence the issue measured, reproduced: onnxruntime under qemu's
    Haswell model (AVX2, no AVX-512, no VNNI) saturates in its fused kernels, and the reference
    runner gives the same bytes there as here."""
    path = tmp_path / "qdq.onnx"
    qdq_model(path)
    here = OnnxRunner(path, semantics="reference")(inputs())
    tests = os.path.dirname(__file__)
    src = os.path.dirname(os.path.dirname(os.path.abspath(__import__("pea_deploy").__file__)))
    env = {**os.environ, "PEA_DEPLOY_CPU_KERNELS": "0"}  # a kernel built for this CPU would not run there
    r = subprocess.run([QEMU, "-cpu", "Haswell", sys.executable, "-c", _EMULATED, str(path),
                        str(tmp_path / "out.npz"), tests, src], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    there = np.load(tmp_path / "out.npz")
    assert str(there["isa"]) == "AVX2 (no VNNI)"
    assert np.array_equal(there["reference"], here)                       # bit for bit
    assert np.array_equal(here, qdq_by_hand(inputs()))
    # the saturating image: two 255 * 127 products clip at 32767 in int16 there
    assert there["fused"][0, 0].max() < here[0, 0].min() - 10 * Y_SCALE, there["fused"][0, 0]


def test_profile_parity_runtimes_are_checked(tmp_path):
    from pea_deploy.export.target import ExportSettings
    from pea_deploy.verify import load_profile
    from pea_deploy.verify.profile import load_profile_file

    assert ExportSettings.from_profile(load_profile("ethos-u55")).parity_runtimes == ("tflite-micro",)
    assert ExportSettings.from_profile(load_profile("ethos-u85")).parity_runtimes == ("tflite-micro",)
    assert ExportSettings.from_profile(load_profile("relu6")).parity_runtimes == ()
    bad = tmp_path / "p.toml"
    bad.write_text('extends = "relu6"\nname = "x"\n[export]\nparity_runtimes = ["tflite_micro"]\n')
    with pytest.raises(ConfigError, match=r"parity_runtimes entry 'tflite_micro' \(did you mean 'tflite-micro'\?\); valid: tflite-micro"):
        ExportSettings.from_profile(load_profile_file(bad))


@pytest.mark.skipif(not __import__("importlib").util.find_spec("tflite_micro"), reason="tflite-micro not installed")
def test_tflite_micro_refuses_an_op_it_lacks_with_its_reason(tmp_path):
    from pea_deploy.errors import ExportStepError
    from pea_deploy.export.tflm import TFLMRunner
    from pea_deploy.agreement.tflite_writer import TFLiteBuilder

    b = TFLiteBuilder()
    x = b.tensor([1, 4, 4, 8], b.s.TensorType.INT8, name="x")
    y = b.tensor([1], b.s.TensorType.INT32, name="rank")
    op = b.s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = b.code("RANK"), [x], [y]
    path = b.save(tmp_path / "rank.tflite", [op], [x], [y], "an op LiteRT has and TFLite Micro lacks")
    with pytest.raises(ExportStepError, match=r"TFLite Micro cannot run rank.tflite: .*RANK"):
        TFLMRunner(path)


def test_a_host_that_computes_otherwise_gets_a_note_and_no_failure():
    from pea_deploy.export.parity import ParityRow
    from pea_deploy.export.pipeline import _failures, _host_section

    def row(runtime, cosine, agreement, gate=True):
        return ParityRow("model.int8.onnx", runtime, 64, "top1", 90.0, agreement, 0.5, 0.0, None, cosine, 20.0, gate)

    rows = [ParityRow("torch fp32", "torch", 64, "top1", 90.0, 100.0, 0.0, 0.0, None, 1.0, None),
            row("onnxruntime, QDQ reference", 0.995, 95.0), row("onnxruntime, fused", 0.950, 72.0, gate=False)]
    host = _host_section(rows)
    assert host["int8_isa"] == int8_isa().name and len(host["notes"]) == 1
    assert "0.9500" in host["notes"][0] and "0.9950" in host["notes"][0] and int8_isa().name in host["notes"][0]
    assert _failures(rows, {}, None, 1.0, 0.99, set()) == []          # the fused row never gates
    rows[2] = row("onnxruntime, fused", 0.995, 95.0, gate=False)
    assert _host_section(rows)["notes"] == []
