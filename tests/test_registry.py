"""One home for every name: recipes, CLI choices, pea-compare and the checker read the registry, and a
smooth activation added through the registry alone trains, exports and is named by the checker."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from click.testing import CliRunner

from pea_deploy import registry
from pea_deploy.compare import plan_settings
from pea_deploy.errors import ConfigError
from pea_deploy.export import ExportOptions, export_checkpoint
from pea_deploy.pea import WeightedEnsemble, smooth_activation
from pea_deploy.train import load_recipe, train
from pea_deploy.train.recipe import SECTIONS
from pea_deploy.verify import load_profile, verify_model

from verify_models import export_onnx, tiny_cnn


def snake(x: torch.Tensor) -> torch.Tensor:
    """Snake (Liu et al. 2020, a = 1): x + sin(x)^2. Its ONNX export holds a `Sin`, an op no built-in
    activation uses, so only the registry entry can tell the checker what it is."""
    return x + torch.sin(x) ** 2


@pytest.fixture
def snake_registered():
    registry.register_activation("snake", snake, onnx_ops=("Sin",), label="Snake")
    yield
    registry.ACTIVATIONS.unregister("snake")


def test_every_recipe_choice_is_a_registry():
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            choices = f.metadata.get("choices")
            assert choices is None or isinstance(choices, registry.Registry), f"{section}.{f.name}"
    assert SECTIONS["pea"].__dataclass_fields__["act"].metadata["choices"] is registry.ACTIVATIONS


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown pea.act 'gelux' \(did you mean 'gelu'\?\)"):
        load_recipe().with_overrides({"pea.act": "gelux"})
    with pytest.raises(ConfigError, match="unknown data.augment entry 'flop'"):
        load_recipe().with_overrides({"data.augment": ["crop", "flop"]})
    with pytest.raises(ConfigError, match="valid: .*mish"):
        registry.ACTIVATIONS.get("nope")
    with pytest.raises(ConfigError, match="already registered"):
        registry.register_activation("gelu", snake)


def test_every_registered_activation_builds_and_compare_accepts_it():
    names = tuple(n for n in registry.ACTIVATIONS.names() if n != registry.KEEP)  # keep: each model's own
    assert {"gelu", "swish", "silu", "mish", "elu"} <= set(names)
    with pytest.raises(ConfigError, match="keeps each activation module"):
        smooth_activation(registry.KEEP)
    settings = plan_settings(load_recipe(), acts=names)
    assert {s.act for s in settings if s.mode == "act"} == set(names)
    x = torch.linspace(-4, 4, 101)
    for name in names:
        act = smooth_activation(name)
        assert torch.isfinite(act.fn(x)).all() and act.module()(x).shape == x.shape


def test_plugin_activation_without_a_derivative_gets_autograd(snake_registered):
    ens = WeightedEnsemble(act="snake")
    x = torch.randn(4, 8, requires_grad=True)
    ens.set_alpha(0.0)
    ens(x).sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    snake(ref).sum().backward()
    assert torch.equal(ens(x), snake(x))                      # alpha 0 is the activation itself
    torch.testing.assert_close(x.grad, ref.grad, rtol=0, atol=0)  # the same autograd graph, same kernels


def test_plugin_activation_trains_exports_and_is_named_by_the_checker(snake_registered, tmp_path):
    from pea_deploy.cli.train import main

    # pea-train's --act choices are read from the registry when the flag is checked.
    r = CliRunner().invoke(main, ["--act", "snake", "--epochs", "2", "--initial-epochs", "0", "--transition-end",
                                  "1", "--width", "0.125", "--out", str(tmp_path / "run"), "-q"])
    assert r.exit_code == 0, r.output
    # This test is about a registered activation reaching a checked export, not about int8 accuracy
    # (test_export holds that on a trained run). Two epochs leave the net at 30-55 % top-1 (measured
    # over 5 seeds and 1 or 2 torch threads): its logits are nearly tied, so int8 rounding flips 2-10 %
    # of its predictions, either way, and its top-1 moves by points (drops -0.84 to 2.23 on the whole
    # split; one image of 64 failed --max-drop 1 on the Xeon of issue 32, as here with 1 thread). So
    # parity runs on the whole split (one image is 0.28 points) with gates sized for such a net: 10
    # points of top-1 and an output cosine of 0.95 (measured 0.996-0.9985, 0.994 on 64 images). A broken
    # int8 file still fails: calibrated on black images, test_export's run measures cosine 0.25-0.49.
    result = export_checkpoint(tmp_path / "run", "relu-only", tmp_path / "export",
                               ExportOptions(formats=("onnx",), latency_runs=1, max_drop=10, min_cosine=0.95))
    assert result.report.alpha["ensembles"] > 0 and result.report.strip["max_abs_diff"] == 0.0
    assert result.verdict == "PASSED", result.failures
    assert verify_model(tmp_path / "export" / "model.int8.onnx", load_profile("ethos-u55")).passed

    # The Act-only net of the same activation is rejected, and named after the registry's label.
    upper = train(load_recipe().with_overrides({"pea.mode": "act", "pea.act": "snake", "train.epochs": 1,
                                                "model.width": 0.125}), tmp_path / "upper",
                  progress=False, log=lambda m: None)
    assert upper["mode"] == "act"
    path = export_onnx(tiny_cnn(smooth_activation("snake").module()), tmp_path / "snake.onnx", 17)
    report = verify_model(path, load_profile("relu-only"))
    found = {(v.op, v.reason_code, v.likely) for v in report.violations}
    assert ("Sin", "activation.not_relu", "Snake") in found
    assert any("Snake" in v.hint for v in report.violations)
