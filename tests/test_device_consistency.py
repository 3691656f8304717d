"""Issue 30 (item 3): code that runs beside the model runs on the model's device. Without a GPU, two
checks: every tensor factory in pea_deploy/ names its device or derives from a tensor (an AST
check, with a named list of host-only code), and the detection task (decode, NMS, the assigner, the
loss, COCO mAP, a training step and an evaluation) runs on a second device that rejects device
mixing as a GPU does (tests/second_device.py)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
import torch

import pea_deploy
from second_device import DEVICE, SecondDevice, on_device, on_host

FACTORIES = {"zeros", "ones", "full", "empty", "empty_strided", "arange", "range", "linspace", "logspace",
             "eye", "tensor", "as_tensor", "asarray", "rand", "randn", "randint", "randperm", "tril_indices",
             "triu_indices", "scalar_tensor", "from_numpy", "frombuffer"}
# a factory's result passed straight to one of these follows its destination (module.to, copy_)
FOLLOWS = {"register_buffer", "Parameter", "copy_"}

# Code that makes host tensors on purpose: a folder (trailing /), a module, or module::function.
HOST_ONLY = {
    "agreement/": "probe networks for the Vela agreement harness, built and run on the host",
    "data/": "datasets are decoded, split and augmented on the host; the training loop moves each "
             "batch to the device (train/loop.py)",
    "detection/folder.py": "det-folder reading and letterboxing, data loading on the host",
    "detection/shapes_det.py": "the procedural set is drawn on the host (numpy), data loading",
    "detection/targets.py::pack_targets": "packs annotations as they are loaded, on the host; "
                                          "padded_targets moves the result to the device",
    "export/": "export, calibration and parity run on the host: ONNX Runtime, TFLite and Vela are CPU tools",
    "nets/erfnet.py::DownsamplerBlock.fold_for_deploy": "the identity affine is written into a conv with "
                                                        "copy_, which crosses devices",
    "pea/ensemble.py::_StochasticFn.forward": "the packed mask of the fused C++ kernel, the CPU kernel path",
    "pea/ensemble_ops.py::_stochastic_cpu": "the CPU kernel's implementation of the op (registered for cpu)",
    "train/build.py::load_data": "the seeded training subset is picked on the host, before any device",
    "train/distributed.py::epoch_indices": "sample indices for the host-side loader",
    "train/distributed.py::same_on_all_ranks": "gathered on the host for gloo, moved with .cuda() for nccl",
    "train/task.py::SegmentationTally.__init__": "export parity's confusion matrix, on the host",
    "train/task.py::Segmentation.evaluate": "the confusion matrix is summed on the host, one (C, C) "
                                            "copy per batch",
}


def _names_device(call: ast.Call, parent: ast.AST | None, grandparent: ast.AST | None) -> bool:
    if any(k.arg in ("device", None) for k in call.keywords):  # device=..., or **kwargs passed on
        return True
    if isinstance(parent, ast.Attribute) and parent.attr in ("to", "cuda") and isinstance(grandparent, ast.Call):
        moved = grandparent.args + [k.value for k in grandparent.keywords]
        return parent.attr == "cuda" or any(not (isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name)
                                                 and a.value.id == "torch") for a in moved)  # not .to(torch.float)
    if isinstance(parent, ast.Call):
        callee = parent.func.attr if isinstance(parent.func, ast.Attribute) else getattr(parent.func, "id", "")
        return callee in FOLLOWS
    return False


def device_free_factories(source: str) -> list[tuple[str, int, str]]:
    """(qualified function, line, factory) for every torch factory call in `source` that neither
    passes device= nor is moved or adopted at once; `from torch import zeros` counts as a call."""
    tree = ast.parse(source)
    parents, scope = {}, {}

    def visit(node, qual):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
            inner = f"{qual}.{child.name}".lstrip(".") if isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else qual
            scope[child] = inner
            visit(child, inner)

    visit(tree, "")
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "torch":
            found += [(scope.get(node, ""), node.lineno, a.name) for a in node.names if a.name in FACTORIES]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            parent = parents.get(node)
            if not _names_device(node, parent, parents.get(parent)):
                found.append((scope.get(node, ""), node.lineno, node.func.attr))
    return sorted(found, key=lambda f: f[1])


def _excused(path: str, function: str) -> str | None:
    """The HOST_ONLY entry covering `function` (qualified: Class.method, outer.inner) in `path`."""
    parts = function.split(".") if function else []
    for key in [path] + [f"{path}::{'.'.join(parts[:k])}" for k in range(1, len(parts) + 1)]:
        if key in HOST_ONLY:
            return key
    return next((k for k in HOST_ONLY if k.endswith("/") and path.startswith(k)), None)


def test_every_tensor_factory_names_its_device_or_is_host_only_by_name():
    root = Path(pea_deploy.__file__).parent
    offending, used = [], set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for function, line, factory in device_free_factories(path.read_text()):
            key = _excused(rel, function)
            if key is None:
                offending.append(f"pea_deploy/{rel}:{line} ({function or 'module level'}): torch.{factory} "
                                 f"without device=")
            used.add(key)
    assert not offending, ("tensors made on the CPU beside the model: pass device= (or derive from a tensor: "
                           "*_like, x.new_*), or name the code in HOST_ONLY with a reason:\n" + "\n".join(offending))
    stale = sorted(set(HOST_ONLY) - used)
    assert not stale, f"HOST_ONLY entries that excuse nothing any more (remove them): {stale}"


def test_the_factory_check_fails_on_the_per_box_nms_that_crashed_on_cuda():
    """The NMS of before issue 30: its keep mask was made on the CPU, so on CUDA it met the GPU IoU
    matrix and raised at the first validation."""
    before = textwrap.dedent("""
        def nms(boxes, scores, iou_threshold):
            order = scores.argsort(descending=True)
            iou = box_iou(boxes[order], boxes[order])
            keep = torch.ones(len(order), dtype=torch.bool)
            for i in range(len(order)):
                if keep[i]:
                    keep[i + 1:] &= iou[i, i + 1:] <= iou_threshold
            return order[keep]
        """)
    assert device_free_factories(before) == [("nms", 5, "ones")]
    fine = textwrap.dedent("""
        from torch import nn
        def f(x, n):
            a = torch.ones(n, dtype=torch.bool, device=x.device)
            b = torch.zeros_like(x) + x.new_zeros(n)
            c = torch.from_numpy(arr).to(x.device)
            self.register_buffer("alpha", torch.zeros(()))
        """)
    assert device_free_factories(fine) == []
    assert device_free_factories("c = torch.tensor([1.0]).to(torch.float64)\nfrom torch import arange\n") == [
        ("", 1, "tensor"), ("", 2, "arange")]


def test_the_second_device_rejects_mixing_as_a_gpu_does():
    x = on_device(torch.arange(6.0).view(2, 3))
    with SecondDevice() as mode:
        with pytest.raises(RuntimeError, match="same device"):
            x + torch.ones(3)
        keep = torch.ones(3, dtype=torch.bool)  # the old NMS: a CPU mask updated from device rows
        with pytest.raises(RuntimeError, match="same device"):
            keep[1:] &= x[0, 1:] <= 1.0
        # what a GPU accepts: CPU scalars, explicit copies, factories given the tensor's device
        y = x * torch.tensor(2.0) + torch.zeros(3, device=x.device)
        assert y.device == DEVICE and x.cpu().device.type == "cpu" and mode.ops > 0
    assert on_host(y).tolist() == [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]


@pytest.fixture(scope="module")
def detector_case():
    from pea_deploy.data.images import TensorImages
    from pea_deploy.data.loader import Normalize
    from pea_deploy.detection.shapes_det import make_shapes_det
    from pea_deploy.detection.targets import pack_targets
    from pea_deploy.nets.yolo import yolo_detector
    from pea_deploy.train.task import Detection

    torch.manual_seed(0)
    images, targets = make_shapes_det(16, 64, seed=1)
    return {"data": TensorImages(images, pack_targets(targets)), "task": Detection(3, (64, 64)),
            "normalize": Normalize((0.5,) * 3, (0.25,) * 3), "net": lambda: yolo_detector(3, width=0.125)}


def test_detection_evaluation_runs_on_the_model_device_with_the_cpu_result(detector_case):
    c = detector_case
    net = c["net"]().eval()
    on_cpu = c["task"].evaluate(net, c["data"], c["normalize"], torch.device("cpu"), batch_size=8)
    with SecondDevice() as mode:
        net.to(DEVICE)
        on_dev = c["task"].evaluate(net, c["data"], c["normalize"], DEVICE, batch_size=8)
        assert mode.ops > 1000   # the model, decode, NMS, the loss and the matching all ran there
    assert on_dev == on_cpu      # the same kernels on the same values: every figure equal


def test_detection_training_step_runs_on_the_model_device(detector_case):
    c = detector_case
    x = c["normalize"](c["data"].images[:8])
    packed = c["data"].labels[:8]
    net = c["net"]().train()
    outputs = net(x)
    loss_cpu, hits_cpu = c["task"].loss(outputs, packed).item(), c["task"].hits(outputs, packed)
    with SecondDevice():
        net.to(DEVICE)
        outputs = net(x.to(DEVICE))
        loss = c["task"].loss(outputs, packed.to(DEVICE))
        loss.backward()
        hits = c["task"].hits(outputs, packed.to(DEVICE))
        assert loss.device == DEVICE and all(p.grad.device == DEVICE for p in net.parameters())
        loss = loss.item()
    # the mode may route a conv through another CPU kernel than plain eager (mkldnn or not), so the
    # loss may differ by float32 rounding of a different summation order
    assert loss == pytest.approx(loss_cpu, rel=1e-5)
    assert hits == hits_cpu


def test_nms_assigner_and_map_keep_their_results_on_the_device(detector_case):
    from pea_deploy.detection.assigner import assign
    from pea_deploy.detection.coco_map import MapAccumulator
    from pea_deploy.detection.decode import decode, detections
    from pea_deploy.detection.targets import padded_targets

    c = detector_case
    with torch.no_grad():
        outputs = c["net"]().eval()(c["normalize"](c["data"].images[:8]))
    with SecondDevice():
        maps = [on_device(o) for o in outputs]
        found = detections(maps, [8, 16, 32])
        assert all(v.device == DEVICE for d in found for v in d.values())
        boxes, logits, points = decode(maps, [8, 16, 32])
        gt_boxes, gt_labels = padded_targets(c["data"].labels[:8], DEVICE)
        assert all(t.device == DEVICE for t in assign(logits.sigmoid(), boxes, points, gt_boxes, gt_labels))
        scored = MapAccumulator()
        scored.add(found, c["data"].labels[:8])
        assert all(t.device == DEVICE for t in scored.scores + scored.labels + scored.hits + scored.truth_labels)
        assert set(scored.compute()) == {"map", "map50", "per_class"}
