"""pea-verify-ops on real models: torch-exported ONNX (opsets 13, 17, 20), onnxruntime QDQ int8,
TFLite flatbuffers run by the LiteRT interpreter, and ONNX files that ship inside installed packages."""

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pea_deploy.cli.verify_ops import main
from pea_deploy.errors import ConfigError
from pea_deploy.verify import load_profile, load_profile_file, verify_model
from pea_deploy.verify.reader import read_model
from pea_deploy.verify.rules import check_graph

from verify_models import (ACTIVATIONS, export_onnx, pea_net, quantize_qdq, stripped_resnet, tiny_cnn,
                           write_tflite)

PROFILES = ("relu-only", "relu6", "ethos-u55", "edgetpu")
FLOAT_PROFILES = ("relu-only", "relu6")

# act -> (the op that must be rejected, what it must be named as) per opset group
EXPECTED_LIKELY = {
    "gelu": {13: ("Erf", "GELU"), 17: ("Erf", "GELU"), 20: ("Gelu", "GELU")},
    "gelu-tanh": {13: ("Tanh", "GELU (tanh"), 17: ("Tanh", "GELU (tanh"), 20: ("Gelu", "GELU")},
    "silu": {o: ("Sigmoid", "SiLU") for o in (13, 17, 20)},
    "silu-decomposed": {o: ("Sigmoid", "SiLU") for o in (13, 17, 20)},
    "mish": {o: ("Softplus", "Mish") for o in (13, 17)},
    "mish-decomposed": {o: ("Softplus", "Mish") for o in (13, 17)},
}


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    return {(name, opset): export_onnx(tiny_cnn(cls()), d / f"{name}-{opset}.onnx", opset)
            for opset in (13, 17, 20) for name, cls in ACTIVATIONS.items()}


def violations(path, target):
    return verify_model(path, load_profile(target)).violations


@pytest.mark.parametrize("opset", [13, 17, 20])
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_activation_every_opset_every_profile(onnx_models, act, opset):
    path = onnx_models[(act, opset)]
    for target in PROFILES:
        report = verify_model(path, load_profile(target))
        codes = {v.reason_code for v in report.violations}
        act_codes = {c for c in codes if c.startswith("activation")}
        if act == "relu" or (act == "relu6" and target != "relu-only"):
            assert not act_codes, (target, report.violations)
        else:
            assert report.verdict == "FAILED", (act, opset, target)
            assert act_codes or "op.unsupported" in codes, (act, opset, target, codes)
        if target in FLOAT_PROFILES:
            want_pass = act == "relu" or (act == "relu6" and target == "relu6")
            assert report.passed == want_pass, (act, opset, target, report.violations)
        else:
            assert not report.passed, "a float model never passes an int8 profile"
    if act in EXPECTED_LIKELY and opset in EXPECTED_LIKELY[act]:
        op, likely = EXPECTED_LIKELY[act][opset]
        hits = [v for v in violations(path, "relu6") if v.op == op]
        assert hits and all(likely in (v.likely or "") for v in hits), [(v.op, v.likely) for v in hits]
        assert likely.split(" ")[0].split("/")[0] in hits[0].message


# The ensembles run as one custom op (pea.weighted_ensemble), which ONNX cannot translate: an ONNX
# export must trace its ATen form, for every activation the op covers and both exporters.
@pytest.mark.parametrize("opset", [17, 20])
@pytest.mark.parametrize("act", ["gelu", "silu", "mish"])
def test_unstripped_pea_ensemble_is_named(tmp_path, opset, act):
    path = export_onnx(pea_net(0.5, act), tmp_path / "pea.onnx", opset)
    found = violations(path, "relu-only")
    assert any("unstripped PEA ensemble" in (v.likely or "") for v in found), [(v.op, v.likely) for v in found]
    assert any("pea-export" in v.hint for v in found)


def test_stripped_pea_resnet_passes_float_profiles(tmp_path):
    path = export_onnx(stripped_resnet(), tmp_path / "resnet.onnx", 17)
    assert verify_model(path, load_profile("relu-only")).passed


def test_qdq_int8(tmp_path):
    relu = quantize_qdq(export_onnx(tiny_cnn(ACTIVATIONS["relu"]()), tmp_path / "relu.onnx", 17),
                        tmp_path / "relu.int8.onnx")
    import onnx
    ops = {n.op_type for n in onnx.load(str(relu)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    for target in PROFILES:
        assert verify_model(relu, load_profile(target)).passed, (target, violations(relu, target))
    gelu = quantize_qdq(export_onnx(tiny_cnn(ACTIVATIONS["gelu"]()), tmp_path / "gelu.onnx", 20),
                        tmp_path / "gelu.int8.onnx")
    found = violations(gelu, "ethos-u55")
    assert any(v.op == "Gelu" and v.reason_code == "activation.not_relu" for v in found)
    assert not verify_model(gelu, load_profile("relu-only")).passed


def test_clip_bounds_from_attributes_initializers_and_constants(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    def model(path, opset, clip_inputs, attrs, inits):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
        node = helper.make_node("Clip", ["x", *clip_inputs], ["y"], name="clip", **attrs)
        g = helper.make_graph([node], "g", [x], [y], initializer=inits)
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]), path)
        return path

    six = [helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]), helper.make_tensor("hi", TensorProto.FLOAT, [], [6.0])]
    cases = {
        "attr6": model(tmp_path / "a.onnx", 6, [], {"min": 0.0, "max": 6.0}, []),
        "init6": model(tmp_path / "b.onnx", 13, ["lo", "hi"], {}, six),
        "init_relu": model(tmp_path / "c.onnx", 13, ["lo"], {}, six[:1]),
        "hardtanh": model(tmp_path / "d.onnx", 6, [], {"min": -1.0, "max": 1.0}, []),
    }
    assert verify_model(cases["attr6"], load_profile("relu6")).passed
    assert verify_model(cases["init6"], load_profile("relu6")).passed
    assert [v.reason_code for v in violations(cases["init6"], "relu-only")] == ["activation.relu6"]
    assert verify_model(cases["init_relu"], load_profile("relu-only")).passed
    assert [v.reason_code for v in violations(cases["hardtanh"], "relu6")] == ["activation.clip"]


def test_nested_if_graph_is_checked(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"], name="ok")], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4])])
    else_g = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["e"], name="hidden_sigmoid")], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, 4])])
    node = helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)
    g = helper.make_graph([node], "g", [x, c], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "if.onnx")
    found = violations(tmp_path / "if.onnx", "relu-only")
    assert any(v.op == "Sigmoid" and "else_branch" in v.graph for v in found)


def test_external_data_is_not_loaded(tmp_path):
    import onnx

    path = export_onnx(stripped_resnet(), tmp_path / "ext.onnx", 17)
    m = onnx.load(str(path))
    onnx.save(m, str(tmp_path / "big.onnx"), save_as_external_data=True, size_threshold=0,
              location="big.onnx.data")
    (tmp_path / "big.onnx.data").unlink()  # the checker must not need the weights
    assert verify_model(tmp_path / "big.onnx", load_profile("relu-only")).passed


def test_tflite_fused_activations_and_ops(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    relu = write_tflite(tmp_path / "relu.tflite", [("CONV_2D", "RELU"), ("ADD", "RELU")])
    relu6 = write_tflite(tmp_path / "relu6.tflite", [("CONV_2D", "RELU6")])
    gelu = write_tflite(tmp_path / "gelu.tflite", [("CONV_2D", "NONE"), ("GELU", "NONE")])
    silu = write_tflite(tmp_path / "silu.tflite", [("CONV_2D", "NONE"), ("LOGISTIC", "NONE")])
    tanh = write_tflite(tmp_path / "tanh.tflite", [("CONV_2D", "TANH")])
    n1 = write_tflite(tmp_path / "n1.tflite", [("CONV_2D", "RELU_N1_TO_1")])
    int8 = write_tflite(tmp_path / "int8.tflite", [("CONV_2D", "RELU"), ("CONV_2D", "RELU6")], dtype="int8")
    custom = write_tflite(tmp_path / "custom.tflite", [("CUSTOM", "NONE")], dtype="int8", custom="MyGelu")
    for path in (relu, relu6, gelu, silu, tanh, n1, int8):  # real models: the interpreter runs them
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        it.invoke()
    assert verify_model(relu, load_profile("relu-only")).passed
    assert [v.reason_code for v in violations(relu6, "relu-only")] == ["activation.fused"]
    assert verify_model(relu6, load_profile("relu6")).passed
    for path in (gelu, silu, tanh, n1):
        for target in PROFILES:
            assert any(v.reason_code.startswith("activation") for v in violations(path, target)), (path, target)
    assert any(v.likely == "GELU" for v in violations(gelu, "relu6"))
    assert verify_model(int8, load_profile("ethos-u55")).passed
    assert verify_model(int8, load_profile("edgetpu")).passed
    assert [v.reason_code for v in violations(int8, "relu-only")] == ["activation.fused"]
    assert [v.reason_code for v in violations(relu, "ethos-u55")] == ["int8.not_quantized"]  # float model: one line
    assert "op.custom" in {v.reason_code for v in violations(custom, "ethos-u55")}


def test_third_party_models_shipped_in_packages():
    import onnxruntime

    root = Path(onnxruntime.__file__).parent / "datasets"
    sigmoid = root / "sigmoid.onnx"
    assert sigmoid.exists()
    for target in PROFILES:
        assert any(v.op == "Sigmoid" for v in violations(sigmoid, target))
    mul = root / "mul_1.onnx"
    assert verify_model(mul, load_profile("relu-only")).passed
    assert not verify_model(mul, load_profile("ethos-u55")).passed  # float Mul on an int8 target


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_formats_and_exit_codes(onnx_models, tmp_path):
    good, bad = onnx_models[("relu", 17)], onnx_models[("gelu", 17)]
    r = invoke("--target", "relu-only", good)
    assert r.exit_code == 0 and r.stdout.splitlines()[-1].startswith("PASSED | target relu-only")
    r = invoke("--target", "relu-only", good, bad)
    assert r.exit_code == 1
    assert "Erf in a GELU (Erf form) pattern" in r.stdout and "hint:" in r.stdout
    assert r.stdout.splitlines()[-1].startswith("FAILED")
    r = invoke("--target", "relu-only", "--format", "json", good, bad)
    data = json.loads(r.stdout)
    assert data["schema_version"] == 1 and data["summary"] == {
        "models": 2, "passed": 1, "failed": 1, "errors": 0, "violations": len(data["models"][1]["violations"])}
    v = data["models"][1]["violations"][0]
    assert {"node_name", "op", "supported", "reason_code", "message"} <= set(v)
    r = invoke("--target", "relu-only", "--format", "junit", "--output", tmp_path / "j.xml", good, bad)
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    r = invoke("--target", "relu-only", "--format", "sarif", "--output", tmp_path / "s.sarif", bad)
    sarif = json.loads((tmp_path / "s.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert r.exit_code == 1 and r.stdout.startswith("FAILED")


def test_cli_bad_input(onnx_models, tmp_path):
    good = onnx_models[("relu", 17)]
    (tmp_path / "notes.onnx").write_text("hello, not a model")
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(Path(good).read_bytes()[:100])
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    r = invoke("--target", "relu-only", tmp_path / "missing.onnx", tmp_path / "notes.onnx", trunc, empty, good)
    assert r.exit_code == 2 and "Traceback" not in r.output
    errs = r.stderr.splitlines()
    assert len(errs) == 4 and all(e.startswith("pea-verify-ops: error:") for e in errs), errs
    assert f"{good}: PASSED" in r.stdout, "the readable model is still checked"
    r = invoke("--target", "relu-onyl", good)
    assert r.exit_code == 2 and "did you mean 'relu-only'" in r.stderr and len(r.stderr.splitlines()) == 1


def test_profiles_are_validated(tmp_path):
    base = 'name = "x"\ndescription = "d"\nbased_on = "b"\n'
    cases = {
        "activations = [\"relu\"]\nfoo = 1\n": "unknown key 'foo'",
        "activations = [\"gelu\"]\n": "'activations'",
        "[onnx]\nops = [\"Conv\", \"Gelu\"]\n": "only ReLU/ReLU6",
        "[tflite.limits.CONV_2D]\nmax_kernal = 3\n": "unknown key 'tflite.limits.CONV_2D.max_kernal'",
        "[onnx]\nopz = []\n": "unknown key 'onnx.opz'",
    }
    for body, msg in cases.items():
        (tmp_path / "p.toml").write_text(base + body)
        with pytest.raises(ConfigError, match=msg):
            load_profile_file(tmp_path / "p.toml")
    (tmp_path / "p.toml").write_text(base + 'activations = ["relu"]\n[onnx]\nops = ["Conv"]\n')
    r = invoke("--profile", tmp_path / "p.toml", tmp_path / "p.toml")
    assert r.exit_code == 2
    for name in PROFILES:
        p = load_profile(name)
        assert p.activations <= {"relu", "relu6"} and p.based_on


def test_conv_limits(tmp_path):
    from torch import nn

    big = nn.Sequential(nn.Conv2d(3, 4, 7, stride=4), nn.ReLU()).eval()
    path = export_onnx(big, tmp_path / "big.onnx", 17, shape=(1, 3, 32, 32))
    codes = {v.reason_code for v in violations(path, "ethos-u55")}
    assert "limit.stride" in codes
    dw = nn.Sequential(nn.Conv2d(4, 8, 3, groups=4, padding=1), nn.ReLU()).eval()
    path = export_onnx(dw, tmp_path / "dw.onnx", 17, shape=(1, 4, 8, 8))
    assert "limit.depth_multiplier" not in {v.reason_code for v in violations(path, "ethos-u55")}
    (tmp_path / "dw.toml").write_text(
        'name = "dw1"\ndescription = "d"\nbased_on = "b"\n[onnx]\nops = ["Conv"]\n'
        '[onnx.limits.Conv]\nmax_depth_multiplier = 1\n')
    found = check_graph(read_model(path), load_profile_file(tmp_path / "dw.toml"))
    assert "limit.depth_multiplier" in {v.reason_code for v in found}


def test_fuzzed_files_never_crash(onnx_models, tmp_path):
    rng = random.Random(0)
    sources = [Path(onnx_models[("gelu", 17)]).read_bytes(),
               write_tflite(tmp_path / "f.tflite", [("CONV_2D", "RELU"), ("LOGISTIC", "NONE")]).read_bytes()]
    paths = []
    for i in range(60):
        data = bytearray(rng.choice(sources))
        if i % 2:
            data = data[: rng.randrange(1, len(data))]
        else:
            for _ in range(rng.randrange(1, 20)):
                pos = rng.randrange(len(data))
                data[pos] = rng.randrange(256)
        p = tmp_path / f"fuzz{i}.bin"
        p.write_bytes(bytes(data))
        paths.append(p)
    r = invoke("--target", "relu6", "--format", "json", *paths)
    assert r.exit_code in (1, 2) and "Traceback" not in r.output and "internal error" not in r.output
    data = json.loads(r.stdout)
    assert data["summary"]["models"] == 60


@pytest.mark.parametrize("target", PROFILES)
def test_describe_is_generated_from_the_profile_and_rules(target):
    from pea_deploy.verify.rules import NODE_RULES, rule_text

    r = invoke("--target", target, "--describe")
    assert r.exit_code == 0, r.output
    p = load_profile(target)
    for op in p.onnx.ops | p.tflite.ops:
        assert f"`{op}`" in r.stdout
    for rule in NODE_RULES:
        assert rule_text(rule) in r.stdout
    assert all(f"`{v}`" in r.stdout for v in p.export.values())


def test_policy_is_told_apart_from_hardware(onnx_models):
    silu = onnx_models[("silu", 17)]
    found = [v for v in violations(silu, "ethos-u55") if v.reason_code == "activation.not_relu"]
    assert found and all("rejected by pea-deploy's ReLU policy (ethos-u55 hardware also runs" in v.message
                         for v in found)
    found = [v for v in violations(silu, "relu6") if v.reason_code == "activation.not_relu"]
    assert found and all("relu6 is held to pea-deploy's ReLU policy" in v.message and "hardware" not in v.message
                         for v in found)
    text = invoke("--target", "ethos-u55", "--describe").stdout
    assert "that is pea-deploy's ReLU policy: the ethos-u55 hardware also runs" in text and "LOGISTIC" in text
    assert "(e.g. Softmax) must produce a model output." in text                       # no rule cut off


def test_a_float_model_on_an_int8_target_is_one_finding(onnx_models):
    found = violations(onnx_models[("relu", 17)], "ethos-u55")
    assert [v.reason_code for v in found] == ["int8.not_quantized"]
    assert found[0].message.startswith("not quantized: all ") and "quantize it first" in found[0].message


def test_foldable_ops_are_reported_once(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Dropout", ["x"], ["d1"], name="drop1"), helper.make_node("Relu", ["d1"], ["r"]),
             helper.make_node("Dropout", ["r"], ["y"], name="drop2")]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "d.onnx")
    found = violations(tmp_path / "d.onnx", "relu-only")
    assert [v.reason_code for v in found] == ["graph.not_folded"]
    assert "fold first (onnxsim): 2 op(s)" in found[0].message and "Dropout" in found[0].message


@pytest.mark.parametrize("form,name", [("hardswish", "HardSwish"), ("hardsigmoid", "HardSigmoid")])
def test_decomposed_hard_activations_are_named(tmp_path, form, name):
    import torch.nn.functional as F
    from torch import nn

    class Hard(nn.Module):
        def forward(self, x):
            gate = F.relu6(x + 3) * (1 / 6)
            return x * gate if form == "hardswish" else gate

    path = export_onnx(tiny_cnn(Hard()), tmp_path / f"{form}.onnx", 17)
    relu6 = verify_model(path, load_profile("relu6"))               # ReLU6 + Add + Mul: it runs, and is named
    assert relu6.passed and any(f"ReLU6 in a {name} (" in n for n in relu6.notes)
    found = violations(path, "relu-only")                           # no ReLU6 here: rejected, named
    assert found and all(v.reason_code == "activation.relu6" and f"in a {name} (" in v.message for v in found)


def test_sarif_locations_are_uris(onnx_models, tmp_path):
    from pea_deploy.verify.report import to_sarif

    absolute = verify_model(onnx_models[("gelu", 17)], load_profile("relu6"))
    relative = verify_model("no such dir/m odel.onnx", load_profile("relu6"))
    runs = json.loads(to_sarif([absolute, relative], load_profile("relu6")))["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in runs}
    assert any(u.startswith("file:///") for u in uris) and "no%20such%20dir/m%20odel.onnx" in uris


def test_a_profile_extends_a_builtin_one(tmp_path):
    """ethos-u65 is ethos-u55's data with another accelerator; a user's profile can do the same,
    and tables merge key by key (one limit changed, the others kept)."""
    from pea_deploy.verify.profile import load_profile_file

    u55, u65 = load_profile("ethos-u55"), load_profile("ethos-u65")
    assert u65.rules_for("tflite").ops == u55.rules_for("tflite").ops
    assert u65.rules_for("tflite").limits == u55.rules_for("tflite").limits
    assert u65.export["vela_accelerator"] == "ethos-u65-256" and u65.name == "ethos-u65"
    mine = tmp_path / "mine.toml"
    mine.write_text('extends = "ethos-u85"\nname = "mine"\ndescription = "d"\nbased_on = "b"\n'
                    '[tflite.limits.CONV_2D]\nmax_kernel = 7\n')
    profile = load_profile_file(mine)
    conv = profile.rules_for("tflite").limits["CONV_2D"]
    assert conv["max_kernel"] == 7 and conv["max_stride"] == 4       # 4 from ethos-u85, 7 from mine
    assert profile.export["vela_accelerator"] == "ethos-u85-256"
    mine.write_text('extends = "no-such"\nname = "mine"\ndescription = "d"\nbased_on = "b"\n')
    with pytest.raises(ConfigError, match="'extends' must name a built-in profile"):
        load_profile_file(mine)


@pytest.mark.parametrize("module, code", [
    (torch.nn.MaxPool2d(3, stride=4), "limit.stride"),
    (torch.nn.AvgPool2d(9, stride=1), "limit.kernel"),
    (torch.nn.ConvTranspose2d(3, 3, 3, stride=3), "limit.stride"),
    (torch.nn.ConvTranspose2d(3, 3, 3, stride=(2, 1)), "limit.stride"),
    (torch.nn.Upsample(scale_factor=3, mode="nearest"), "limit.scale"),
])
def test_ethos_u_limits_are_mirrored_on_the_onnx_side(module, code, tmp_path):
    """What Vela puts on the CPU in TFLite (pool stride 4, average pool over 8, transposed conv
    stride 3 or 2x1, resize x3) is refused in the ONNX model too."""
    path = export_onnx(module.eval(), tmp_path / "m.onnx", 17, shape=(1, 3, 24, 24))
    report = verify_model(path, load_profile("ethos-u55"))
    assert code in {v.reason_code for v in report.violations}, [v.message for v in report.violations]


@pytest.mark.parametrize("module", [torch.nn.MaxPool2d(3, stride=2), torch.nn.AvgPool2d(8, stride=3),
                                    torch.nn.ConvTranspose2d(3, 3, 2, stride=2),
                                    torch.nn.Upsample(scale_factor=2, mode="nearest")])
def test_ethos_u_onnx_limits_pass_what_vela_runs(module, tmp_path):
    path = export_onnx(module.eval(), tmp_path / "m.onnx", 17, shape=(1, 3, 24, 24))
    report = verify_model(path, load_profile("ethos-u55"))
    assert not [v for v in report.violations if v.reason_code.startswith("limit.")], \
        [v.message for v in report.violations]


def _probe(tmp_path, **kw):
    from pea_deploy.agreement.probe_models import ProbeCase, write_probe

    case = ProbeCase(**kw)
    return write_probe(case, tmp_path / f"{case.name}.tflite")


def _codes(path, target="edgetpu"):
    return {v.reason_code for v in verify_model(path, load_profile(target)).violations}


def test_edgetpu_refuses_a_batch_of_two_on_every_tensor(tmp_path):
    """Coral: only the 3 innermost dimensions of any tensor may exceed 1; the check reads every
    operator's output, not only the model's inputs and outputs."""
    assert "shape.outer_dims" in _codes(_probe(tmp_path, op="CONV_2D", batch=2))
    assert "shape.outer_dims" not in _codes(_probe(tmp_path, op="CONV_2D", batch=1))
    assert "shape.outer_dims" not in _codes(_probe(tmp_path, op="CONV_2D", batch=2), "ethos-u55")


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
def test_edgetpu_refuses_a_fused_activation_on_pooling(op, tmp_path):
    assert "limit.fused_activation" in _codes(_probe(tmp_path, op=op, fused="RELU"))
    assert "limit.fused_activation" not in _codes(_probe(tmp_path, op=op))


def _onnx_channel_op(path, op: str, out_shape: list[int]):
    """A one-op ONNX model on [1, 3, 8, 8] that pads or reduces along the channel axis."""
    import onnx
    from onnx import TensorProto, helper

    if op == "Pad":
        inits = [helper.make_tensor("pads", TensorProto.INT64, [8], [0, 1, 0, 0, 0, 1, 0, 0])]
        node = helper.make_node("Pad", ["x", "pads"], ["y"])
    else:
        inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
        node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_edgetpu_limits_on_onnx_softmax_gemm_mean_and_pad(tmp_path):
    """The Coral notes mirrored on ONNX: Softmax 1-D and at most 16,000 elements, a reduction or a
    pad along height and width only."""
    cases = [(torch.nn.Softmax(dim=1), (1, 20000), "limit.elements"),
             (torch.nn.Softmax(dim=1), (1, 10, 4, 4), "limit.rank")]
    for i, (module, shape, code) in enumerate(cases):
        path = export_onnx(module.eval(), tmp_path / f"m{i}.onnx", 17, shape=shape)
        assert code in _codes(path), (module, shape, _codes(path))
    for op, out_shape in (("Pad", [1, 5, 8, 8]), ("ReduceMean", [1, 1, 8, 8])):   # along channels
        assert "limit.axes" in _codes(_onnx_channel_op(tmp_path / f"{op}.onnx", op, out_shape))
    fine = export_onnx(torch.nn.Sequential(torch.nn.ZeroPad2d(1), torch.nn.Flatten(), torch.nn.Softmax(dim=1)).eval(),
                       tmp_path / "ok.onnx", 17, shape=(1, 1, 8, 8))
    assert not {c for c in _codes(fine) if c.startswith("limit.")}
