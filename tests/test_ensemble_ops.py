"""The ensembles as torch.library operators (pea/ensemble_ops.py): their Triton kernels against the
ATen form (interpreted on CPU tensors), opcheck, one compiled graph for the whole alpha schedule,
and pea-train --compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

from pea_deploy.pea import StochasticEnsemble, compiled_form, convert, cpu_kernels, ensemble_ops, set_alpha

HERE = Path(__file__).parent


def test_triton_kernels_match_the_aten_form_interpreted():
    """Forward and backward, weighted and stochastic, float32 and bfloat16, contiguous and
    channels-last, alpha 0, 0.3 and 1, every activation and target: tests/triton_interpreted.py
    (its docstring gives the tolerances and why they hold)."""
    done = subprocess.run([sys.executable, str(HERE / "triton_interpreted.py")], capture_output=True, text=True,
                          env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 failed" in done.stdout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weighted_op_passes_opcheck(dtype):
    x = torch.randn(3, 4, 5, dtype=dtype, requires_grad=True)
    for alpha in (0.0, 0.3, 1.0):
        torch.library.opcheck(ensemble_ops.weighted_ensemble, (x, torch.tensor(alpha), 1, 0))
        torch.library.opcheck(ensemble_ops.weighted_ensemble, (x, torch.tensor(alpha), 3, 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_stochastic_op_passes_opcheck(dtype):
    """With the fused CPU kernel off: that kernel draws its own Philox stream (16-bit draws, ties
    settled further, kept as a packed mask), while what compile traces on a CPU is the ATen form's
    stream, so eager and traced CPU outputs differ by design where the kernel runs."""
    x = torch.randn(3, 4, 5, dtype=dtype, requires_grad=True)
    seed = ensemble_ops.draw_seed("cpu")
    with cpu_kernels.disabled():
        for alpha in (0.0, 0.3, 1.0):
            torch.library.opcheck(ensemble_ops.stochastic_ensemble, (x, torch.tensor(alpha), seed, 2, 0))


def test_stochastic_draws_follow_the_global_seed():
    m = StochasticEnsemble("gelu", "relu").train()
    m.set_alpha(0.4)
    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(7)
    first = m(x)
    torch.manual_seed(7)
    assert torch.equal(m(x), first)
    assert not torch.equal(m(x), first)  # the next call draws afresh


def _net(variant: str) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.GELU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    return convert(net, act="keep", variant=variant)


@pytest.mark.parametrize("variant,form", [("weighted", "op"), ("stochastic", "op"), ("weighted", "pointwise")])
def test_compiled_net_is_one_graph_for_every_alpha_and_matches_eager(variant, form):
    """alpha is a tensor the graph reads: stepping it through the schedule compiles nothing new.
    Weighted: the compiled forward equals eager up to Inductor's reordering of float32 sums (the
    convolutions and BatchNorm are recompiled, not bit-identical code: 1e-5 on outputs of order 1);
    stochastic: exact at alpha 0 and 1, where no draw decides anything."""
    torch._dynamo.reset()
    net = compiled_form.use(_net(variant), form).train()
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(net, backend=counter)
    x = torch.randn(4, 3, 8, 8)
    for alpha in (0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 1.0, 0.33):
        set_alpha(net, alpha)
        out = compiled(x)
        out.sum().backward()
        net.zero_grad()
        if variant == "weighted" or alpha in (0.0, 1.0):
            with torch.no_grad():
                assert torch.allclose(out, net(x), atol=1e-5), alpha
    assert counter.frame_count == 1


@pytest.mark.slow  # Inductor compiles a ResNet-18's forward and backward twice: minutes on 2 cores
def test_pea_train_compile_trains_checkpoints_and_resumes(tmp_path):
    out = tmp_path / "run"
    common = [sys.executable, "-m", "pea_deploy.cli.train", "--width", "0.125", "--train-subset", "128",
              "--epochs", "2", "--initial-epochs", "0", "--transition-end", "1", "--batch-size", "32",
              "--compile", "-q", "--out", str(out), "--device", "cpu"]
    done = subprocess.run([*common, "--stop-after-epoch", "1"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert not any(k.startswith("_orig_mod") for k in state["model"])  # the plain model's keys
    done = subprocess.run([sys.executable, "-m", "pea_deploy.cli.train", "--resume", str(out), "-q"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["all_alphas_one"]


@pytest.mark.parametrize("variant", ["weighted", "stochastic"])
def test_torch_export_sees_one_op_per_ensemble(variant):
    """A model's own nn.GELU / nn.SiLU (convert's act="keep") runs the op too: no parameters to train."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3), nn.SiLU())
    net = convert(net, act="keep", variant=variant).train()
    set_alpha(net, 0.3)
    graph = torch.export.export(net, (torch.randn(2, 3, 8, 8),)).graph
    calls = [str(n.target) for n in graph.nodes if n.op == "call_function"]
    assert calls.count(f"pea.{variant}_ensemble.default") == 2, calls
    assert not any(name.startswith(("aten.gelu", "aten.silu", "aten.relu", "aten.lerp")) for name in calls), calls
