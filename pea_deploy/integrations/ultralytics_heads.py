"""Where an exported Ultralytics detector's graph ends, and the host code that finishes it.

`raw` (RawHead): per level one map (B, 4*reg_max + classes, H, W): the distribution of each box
edge's distance (reg_max bins, DFL) and the class logits, as the convolutions leave them. The NPU
runs convolutions only; decoding (softmax over the bins, anchors, sigmoid) and NMS run on the host:

    boxes, scores = decode_raw(maps, input_hw)          # (B, N, 4) x1 y1 x2 y2 pixels, (B, N, C)

`decoded` (DecodedHead): DFL and box decode in the graph with Ultralytics' own Detect code, as two
outputs, boxes (B, 4, N) centre x, y, width, height in pixels and class probabilities (B, C, N);
only NMS on the host.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..detection.coco_map import coco_map
from ..detection.decode import anchor_points
from ..detection.nms import batched_nms

HEADS = ("raw", "decoded")


def _detect(model: nn.Module) -> nn.Module:
    head = model.model[-1]
    if not all(hasattr(head, a) for a in ("cv2", "cv3", "reg_max", "nc")) or head.cv2 is None:
        from ..errors import ConfigError

        raise ConfigError(f"the checkpoint's last layer is {type(head).__name__}, not an Ultralytics Detect head "
                          "with one-to-many branches (cv2, cv3): only detection models export here")
    return head


class RawHead(nn.Module):
    """An Ultralytics DetectionModel up to the last convolution of each head level. The model is the
    `model` child, so export reports name its modules as the user does (`model.22.cv2.0.2`: the
    wrapper's own prefix is dropped, layer_error.module_namer; `head` is an alias of `model.model[-1]`)."""

    wrapper_of = "model"

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.head = _detect(model)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        saved = []
        for m in self.model.model[:-1]:  # the route of DetectionModel._predict_once
            if m.f != -1:
                x = saved[m.f] if isinstance(m.f, int) else [x if j == -1 else saved[j] for j in m.f]
            x = m(x)
            saved.append(x if m.i in self.model.save else None)
        f = self.head.f
        feats = [x if j == -1 else saved[j] for j in f]
        return tuple(torch.cat([self.head.cv2[i](v), self.head.cv3[i](v)], 1) for i, v in enumerate(feats))


class DecodedHead(nn.Module):
    """The model's own decode (DFL, anchors, strides: Ultralytics' Detect code) in the graph, as two
    outputs: boxes (B, 4, N) cx cy w h in pixels and class probabilities (B, C, N). Ultralytics
    concatenates the two; in int8 one tensor cannot hold pixels and probabilities (TFLite's
    concatenation refuses two scales), so they stay apart. Reports name modules below `raw`'s model."""

    wrapper_of = "raw"

    def __init__(self, model: nn.Module, imgsz: int):
        super().__init__()
        from ultralytics.utils.tal import make_anchors

        self.raw = RawHead(model)
        with torch.no_grad():  # constants of the graph for its one input size (no shape arithmetic in it)
            device = next(model.parameters()).device
            maps = self.raw(torch.zeros(1, 3, imgsz, imgsz, device=device))
        anchors, strides = (a.transpose(0, 1) for a in make_anchors(list(maps), self.raw.head.stride, 0.5))
        self.register_buffer("anchors", anchors.unsqueeze(0).contiguous())
        self.register_buffer("strides", strides.contiguous())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        head = self.raw.head
        maps = self.raw(x)
        bins = 4 * head.reg_max
        box = torch.cat([m[:, :bins].flatten(2) for m in maps], 2)
        logits = torch.cat([m[:, bins:].flatten(2) for m in maps], 2)
        return head.decode_bboxes(head.dfl(box), self.anchors) * self.strides, logits.sigmoid()


def decode_raw(maps, input_hw: tuple[int, int], reg_max: int = 16) -> tuple[Tensor, Tensor]:
    """(boxes (B, N, 4) x1 y1 x2 y2 in input pixels, class probabilities (B, N, C)) from RawHead's maps."""
    maps = [m.float() for m in maps]
    strides = [input_hw[0] // m.shape[-2] for m in maps]
    flat = torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2)  # (B, N, 4 * reg_max + C)
    b, n, _ = flat.shape
    bins = flat[..., :4 * reg_max].reshape(b, n, 4, reg_max).softmax(-1)
    # expected distance per edge, in strides
    dist = bins @ torch.arange(reg_max, dtype=flat.dtype, device=flat.device)
    points, stride_of = anchor_points([tuple(m.shape[-2:]) for m in maps], strides, flat.device)
    dist = dist * stride_of[None, :, None]
    boxes = torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1)
    return boxes, flat[..., 4 * reg_max:].sigmoid()


def decode_decoded(outputs) -> tuple[Tensor, Tensor]:
    """(boxes (B, N, 4) x1 y1 x2 y2, class probabilities (B, N, C)) from DecodedHead's outputs."""
    boxes, scores = (o.float().transpose(1, 2) for o in outputs)
    cxcy, wh = boxes[..., :2], boxes[..., 2:]
    return torch.cat([cxcy - wh / 2, cxcy + wh / 2], -1), scores


@torch.no_grad()
def detections(boxes: Tensor, scores: Tensor, *, conf: float = 0.001, iou: float = 0.7,
               max_det: int = 300) -> list[dict]:
    """Per image, the best class per anchor above `conf`, class-aware NMS at `iou` (Ultralytics'
    validation settings), at most `max_det`."""
    found = []
    for bx, sc in zip(boxes, scores):
        best, label = sc.max(-1)
        keep = best > conf
        bx, best, label = bx[keep], best[keep], label[keep]
        top = best.argsort(descending=True)[:30000]
        bx, best, label = bx[top], best[top], label[top]
        kept = batched_nms(bx, best, label, iou)[:max_det]
        found.append({"boxes": bx[kept], "scores": best[kept], "labels": label[kept]})
    return found


def map_metric(head: str, input_hw: tuple[int, int], reg_max: int):
    """`fn(outputs, targets) -> {"map": mAP@0.5:0.95 %, "map50": mAP@0.5 %}` for `head`'s outputs: the
    row's score and the one reported (and gated) beside it, from one decode, NMS and matching."""

    def detection_map(outputs, targets) -> dict[str, float]:
        if head == "raw":
            boxes, scores = decode_raw(outputs, input_hw, reg_max)
        else:
            boxes, scores = decode_decoded(outputs)
        found = coco_map(detections(boxes, scores), list(targets))
        return {"map": found["map"], "map50": found["map50"]}

    return detection_map
