"""Your own network through the commands: the shipped example file (plain torch) trained as it is,
PEA-fine-tuned from those weights to ReLU6, exported for the Ethos-U55 and verified; and every bad
input of that route as one error line, exit 2, no run directory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pea_deploy.cli.export import main as export_main
from pea_deploy.cli.train import main as train_main
from pea_deploy.cli.verify_ops import main as verify_main

from cli_checks import assert_one_error_line

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mobilenet_v3_style.py"
MODEL = f"{EXAMPLE}:build"
SMALL = ["--model-file", MODEL, "--model-args", '{"width": 0.5}', "--act", "keep", "-q"]
needs_tflite_vela = pytest.mark.skipif(not (importlib.util.find_spec("litert_torch") and importlib.util.find_spec("ethosu")),
                                       reason="pea-deploy[tflite,vela] not installed")


def train(*args):
    return CliRunner().invoke(train_main, [str(a) for a in args])


@pytest.fixture(scope="module")
def smooth_run(tmp_path_factory):
    """The example trained as it is (its own Hardswish/SiLU/GELU/Hardsigmoid): the user's starting point."""
    out = tmp_path_factory.mktemp("smooth")
    r = train(*SMALL, "--upper-limit", "--epochs", "3", "--lr", "0.05", "--out", out)
    assert r.exit_code == 0, r.output
    return out


def test_example_file_imports_no_pea_deploy():
    assert "pea_deploy" not in EXAMPLE.read_text().replace("pea-deploy", "").split('"""', 2)[2]


@needs_tflite_vela
def test_own_network_to_ethos_u55(smooth_run, tmp_path):
    out = tmp_path / "relu6"
    r = train(*SMALL, "--init-from", smooth_run, "--target", "relu6", "--epochs", "2", "--initial-epochs", "0",
              "--transition-end", "1", "--bn-recalibration", "5", "--distill", "--lr", "0.02", "--out", out)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_source"]["kind"] == "file" and summary["model_source"]["function"] == "build"
    assert summary["model_source"]["args"] == {"width": 0.5} and len(summary["model_source"]["sha256"]) == 64
    assert summary["init_from"]["kind"].startswith("pea-deploy run") and summary["distill"]
    became = {r["replaced"] for r in summary["conversion"] if r.get("variant") == "weighted"}
    assert {"Hardswish", "SiLU", "GELU"} <= became
    assert any(r["replaced"] == "Hardsigmoid" and r.get("became") for r in summary["conversion"])
    smooth = json.loads((smooth_run / "summary.json").read_text())["final_val_top1"]
    assert summary["start_val_top1"] == smooth                     # alpha 0 = the trained network
    # measured 80.5-81.1 % over 1 and 2 torch threads (chance 10 %): > 50 says it kept what it knew
    assert summary["all_alphas_one"] and summary["final_val_top1"] > 50
    export = tmp_path / "export"
    # int8 of this 2-epoch net measured drops of 0.56-1.11 points (2-4 of 359 images) and an output
    # cosine of 0.9977-0.9994 over 1 and 2 torch threads: --max-drop 5 (18 images) and the default
    # cosine gate 0.99 leave 4x that, and an int8 file that is broken loses tens of points
    r = CliRunner().invoke(export_main, [str(out), "--target", "ethos-u55", "--out", str(export),
                                         "--latency-runs", "1", "--calib-samples", "64", "--max-drop", "5"])
    assert r.exit_code == 0, r.output
    report = json.loads((export / "report.json").read_text())
    assert report["vela"]["cpu_operators"] == 0
    r = CliRunner().invoke(verify_main, ["--target", "ethos-u55", str(export / "model.int8.onnx"),
                                         str(export / "model.int8.tflite")])
    assert r.exit_code == 0 and r.stdout.strip().splitlines()[-1].startswith("PASSED"), r.output


def test_hard_swap_and_the_smooth_export_rejected(smooth_run, tmp_path):
    from pea_deploy.export import export_onnx, load_trained
    from pea_deploy.verify import load_profile, verify_model

    r = train(*SMALL, "--init-from", smooth_run, "--no-pea", "--epochs", "1", "--bn-recalibration", "5",
              "--out", tmp_path / "hard")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "hard" / "summary.json").read_text())
    assert summary["conversion"] and all(r["variant"] == "hard swap" for r in summary["conversion"] if "variant" in r)
    trained = load_trained(smooth_run)                              # the user's smooth model, exported as is
    path = export_onnx(trained.model, torch.zeros(trained.input_shape), tmp_path / "smooth.onnx")
    report = verify_model(path, load_profile("relu6"))              # a float profile: the activations alone
    likely = {v.likely for v in report.violations}
    assert not report.passed and {"HardSwish", "GELU"} & likely


def test_bad_input_is_one_line_and_no_run_directory(smooth_run, tmp_path):
    def refused(*args, pattern):
        out = tmp_path / "run"
        assert_one_error_line(train(*args, "--epochs", "1", "--initial-epochs", "0", "--transition-end", "1", "-q",
                                    "--out", out), "pea-train", 2, pattern)
        assert not out.exists()

    (tmp_path / "raises.py").write_text("def build(num_classes, in_channels):\n    raise ValueError('no GPU')\n")
    (tmp_path / "notmodule.py").write_text("def build(num_classes, in_channels):\n    return 42\n")
    (tmp_path / "broken.py").write_text("def build(:\n")
    (tmp_path / "relu.py").write_text("from torch import nn\ndef build(num_classes, in_channels):\n"
                                      "    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.Flatten(),"
                                      " nn.LazyLinear(num_classes))\n")
    refused("--model-file", tmp_path / "missing.py:build", "--act", "keep", pattern="does not exist")
    refused("--model-file", f"{EXAMPLE}:nope", "--act", "keep", pattern="has no function 'nope'")
    refused("--model-file", f"{tmp_path / 'raises.py'}:build", "--act", "keep", pattern="raised ValueError: no GPU")
    refused("--model-file", f"{tmp_path / 'notmodule.py'}:build", "--act", "keep", pattern="returned int, not")
    refused("--model-file", f"{tmp_path / 'broken.py'}:build", "--act", "keep", pattern="failed to import: SyntaxError")
    refused("--model-file", f"{tmp_path / 'relu.py'}:build", "--act", "keep", pattern="found no")
    refused("--model-file", str(EXAMPLE), "--act", "keep", pattern="must look like")
    refused("--model-args", '{"width": 0.5}', pattern="model.args are for your own network")
    # weights that do not fit, corrupt, foreign, pickled, and a PEA run still in its transition
    refused(*SMALL, "--model-args", '{"width": 1.0}', "--init-from", smooth_run, pattern="does not fit the network")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00garbage" * 20)
    refused(*SMALL, "--init-from", tmp_path / "corrupt.pt", pattern="not a readable torch file")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    refused(*SMALL, "--init-from", tmp_path / "list.pt", pattern="is not a state_dict")
    torch.save({"opt": torch.optim.SGD}, tmp_path / "pickled.pt")
    refused(*SMALL, "--init-from", tmp_path / "pickled.pt", pattern="not unpickled")
    refused(*SMALL, "--distill", pattern="distill needs the original network's trained weights")
    mid = tmp_path / "mid"
    r = train(*SMALL, "--init-from", smooth_run, "--epochs", "2", "--initial-epochs", "0", "--transition-end", "2",
              "--stop-after-epoch", "1", "--out", mid)
    assert r.exit_code == 0, r.output
    refused(*SMALL, "--init-from", mid, pattern="PEA ensemble(s) at alpha < 1")


def test_compare_takes_the_same_flags_and_gives_a_verdict(smooth_run, tmp_path):
    from pea_deploy.cli.compare import main as compare_main

    r = CliRunner().invoke(compare_main, ["--model-file", MODEL, "--model-args", '{"width": 0.5}', "--acts", "keep",
                                          "--init-from", str(smooth_run), "--variants", "weighted", "--seeds", "2",
                                          "--epochs", "1", "--initial-epochs", "0", "--transition-ends", "0.5",
                                          "--train-subset", "512", "--extras", "plain,bn", "--out",
                                          str(tmp_path / "cmp"), "-q"])
    assert r.exit_code == 0, r.output
    for label in ("| hard swap |", "| hard swap + BN |", "| own activations, fine-tuned (upper limit) |",
                  "| PEA weighted own activations T_end=0.5 |", "| PEA weighted own activations T_end=0.5 + BN |"):
        assert label in r.stdout
    assert "**Take " in r.stdout                                   # a plain verdict
