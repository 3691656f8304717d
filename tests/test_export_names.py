"""What an export says about itself in a console and in its layer rows (issue 31 item 5): a short
repr for ExportResult and ExportReport, and module paths as the user's network names them, not as
torch's tracers spell them (an alias, a module reached through a dict, pea-deploy's own wrapper)."""

from __future__ import annotations

import torch
from torch import nn

from pea_deploy import export_model
from pea_deploy.export import ExportOptions
from pea_deploy.export.layer_error import module_namer, module_path
from pea_deploy.export.outputs import FlatOutputs


class Head(nn.Module):
    """Two levels of box and class branches, reached through a dict as Ultralytics' Detect does."""

    def __init__(self):
        super().__init__()
        self.cv2 = nn.ModuleList(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
                                 for _ in range(2))
        self.cv3 = nn.ModuleList(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1))
                                 for _ in range(2))

    @property
    def branches(self):
        return {"box": self.cv2, "cls": self.cv3}

    def forward(self, feats):
        return self.levels(feats, **self.branches)

    def levels(self, feats, box, cls):
        return {"boxes": [box[i](f) for i, f in enumerate(feats)], "scores": [cls[i](f) for i, f in enumerate(feats)]}


class Detector(nn.Module):
    """A dict of outputs (exported through FlatOutputs) and its head kept twice: as `model.5` and as
    the alias `head`, the way wrappers of Ultralytics models keep it."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(), Head())
        self.head = self.model[-1]

    def forward(self, x):
        a = self.model[:3](x)
        return self.head([a, self.model[3:5](a)])


def test_tracer_spellings_become_module_paths():
    assert module_path("m.model.22.__dict__['_modules']['cv2'].0.2") == "m.model.22.cv2.0.2"
    assert module_path("L['self'].model[22].cv2[0][2]") == "model.22.cv2.0.2"
    assert module_path("getattr(getattr(L['self'].model, '22'), 'cv2')") == "model.22.cv2"
    assert module_path("self.layer1._modules['0'].conv1") == "layer1.0.conv1"
    assert module_path("layer1.0.conv1") == "layer1.0.conv1" and module_path("") == ""


def test_graph_module_stacks_name_modules_as_the_network_does():
    """The TFLite rows' names come from torch.export's module stack (tflite_layer_error): through the
    wrapper and the alias they read `model.model.5...` / `model.head...`; named, `model.5...`."""
    from pea_deploy.export.tflite_layer_error import _module_of

    net = Detector().eval()
    wrapped = FlatOutputs(net)
    graph = torch.export.export(wrapped, (torch.rand(1, 3, 16, 16),), strict=True)
    traced = {_module_of(n)[0] for n in graph.graph.nodes if n.op == "call_function"} - {""}
    assert any(p.startswith("model.head.") for p in traced)  # what the tracer recorded
    name = module_namer(wrapped)
    named = {name(p) for p in traced}
    assert "model.5.cv2.1.2" in named and "model.0" in named
    assert all(not p.startswith("head") and isinstance(net.get_submodule(p), nn.Module) for p in named)


def test_export_result_and_report_reprs_are_one_short_line(tmp_path):
    torch.manual_seed(0)
    net = Detector().eval()
    x = torch.rand(16, 3, 16, 16)
    result = export_model(net, "relu-only", tmp_path / "out", example_inputs=x[:1], calibration=x,
                          options=ExportOptions(formats=("onnx",), latency_runs=1))
    text = repr(result)
    worst = min((r for r in result.report.parity[1:]), key=lambda r: r.cosine)
    assert text == (f"ExportResult(out_dir={str(tmp_path / 'out')!r}, verdict={result.verdict.value}, "
                    f"exit_code={int(result.exit_code)}, worst_cosine={worst.cosine:.4f} ({worst.artefact}), "
                    f"failures={len(result.failures)})")
    report = repr(result.report)
    assert report.startswith("ExportReport(target='relu-only', verdict=") and f"({worst.artefact})" in report
    assert len(text) < 200 and len(report) < 200 and "\n" not in text + report
    # the per-layer rows name modules as the network does: below FlatOutputs, the head by its own name
    rows = result.report.artefacts["model.int8.onnx"]["layer_errors"]
    modules = {r["module"] for r in rows} - {""}
    assert {"model.2", "model.5.cv2.0.1", "model.5.cv3.1.2"} <= modules
    assert all(isinstance(net.get_submodule(m), nn.Module) and not m.startswith("head") for m in modules)


class SharedActNet(nn.Module):
    """One activation instance in every block, as Ultralytics' `Conv.default_act` is."""

    def __init__(self):
        super().__init__()
        act = nn.ReLU()
        self.model = nn.Sequential(*(nn.Sequential(nn.Conv2d(3 if i == 0 else 4, 4, 1), act) for i in range(3)))

    def forward(self, x):
        return self.model(x)


class CallsGrandchildren(nn.Module):
    """A wrapper that calls its child's layers itself (as the Ultralytics heads do), so a tracer's
    scope path leaves the child out."""

    wrapper_of = "net"

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        for layer in self.net.model:
            x = layer(x)
        return x


def test_a_shared_activation_is_named_by_the_slot_it_was_called_from():
    name = module_namer(CallsGrandchildren(SharedActNet()))
    assert name("net.model.2.1") == "model.2.1"       # not model.0.1, the instance's first name
    assert name("net.model.1.0") == "model.1.0"
    assert name("model.2.1") == "model.2.1"           # the scope without the wrapper's child
    assert name("net") == "" and name("") == ""       # the wrapper's own ops
