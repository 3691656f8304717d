"""What the trainer optimises and scores, per kind of dataset: classification (cross-entropy, top-1),
semantic segmentation (per-pixel cross-entropy with an ignore index, mIoU) or object detection (the
task-aligned loss, COCO mAP; pea_deploy.detection).

The trainer asks its task for the loss, the running training score and the validation scores, so the
loop itself is the same for both; the history names its columns after the task's metrics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import Normalize, iterate
from ..data.images import DatasetSplits
from ..metrics import METRIC_LABELS, confusion_matrix, iou_percent, mean_iou, pixel_accuracy


class ClassificationTally:
    """Running comparison of a model's predictions with labels and with a reference's predictions."""

    def __init__(self):
        self.correct = self.same = self.counted = 0

    def add(self, pred: Tensor, ref_pred: Tensor, labels: Tensor) -> None:
        self.correct += int((pred == labels).sum())
        self.same += int((pred == ref_pred).sum())
        self.counted += int(labels.numel())

    def score(self) -> tuple[float, list | None]:
        """(top-1 %, no per-class list)."""
        return 100.0 * self.correct / max(self.counted, 1), None


class SegmentationTally:
    def __init__(self, num_classes: int, ignore_index: int):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.same = self.counted = 0
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def add(self, pred: Tensor, ref_pred: Tensor, labels: Tensor) -> None:
        scored = labels != self.ignore_index
        self.same += int(((pred == ref_pred) & scored).sum())
        self.counted += int(scored.sum())
        self.confusion += confusion_matrix(pred, labels.long(), self.num_classes, self.ignore_index)

    def score(self) -> tuple[float, list | None]:
        """(mIoU %, per-class IoU %)."""
        return mean_iou(self.confusion), iou_percent(self.confusion)


class Classification:
    metric = "top1"          # validation score that picks the best checkpoint (higher is better)
    train_metric = "top1"    # running score shown while training
    label = METRIC_LABELS["top1"]

    def __init__(self, label_smoothing: float = 0.0):
        self.label_smoothing = label_smoothing

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)

    def tally(self) -> ClassificationTally:
        return ClassificationTally()

    def hits(self, logits: Tensor, target: Tensor) -> tuple[int, int]:
        """(correct, counted) for the running training score."""
        return int((logits.argmax(1) == target).sum()), int(target.numel())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data, normalize: Normalize, device: torch.device,
                 batch_size: int = 256) -> dict:
        """{"loss": mean cross-entropy, "top1": %} of `model` in eval mode on `data`."""
        model.eval()
        loss_sum, correct, n = 0.0, 0, 0
        for images, labels in iterate(data, batch_size, shuffle=False):
            logits = model(normalize(images.to(device)))
            y = labels.to(device)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        return {"loss": loss_sum / n, "top1": 100.0 * correct / n}


class Segmentation:
    metric = "miou"
    train_metric = "pixel_acc"
    label = METRIC_LABELS["miou"]

    def __init__(self, num_classes: int, ignore_index: int, label_smoothing: float = 0.0):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.label_smoothing = label_smoothing

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), target.long(), ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)

    def tally(self) -> SegmentationTally:
        return SegmentationTally(self.num_classes, self.ignore_index)

    def hits(self, logits: Tensor, target: Tensor) -> tuple[int, int]:
        scored = target != self.ignore_index
        return int(((logits.argmax(1) == target) & scored).sum()), int(scored.sum())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data, normalize: Normalize, device: torch.device,
                 batch_size: int = 256) -> dict:
        """{"loss", "miou" %, "pixel_acc" %, "iou": per-class IoU % (None: class absent)} on `data`."""
        model.eval()
        loss_sum, n = 0.0, 0
        confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        for images, masks in iterate(data, batch_size, shuffle=False):
            logits = model(normalize(images.to(device))).float()
            y = masks.to(device).long()
            loss_sum += F.cross_entropy(logits, y, ignore_index=self.ignore_index, reduction="sum").item()
            n += int((y != self.ignore_index).sum())
            confusion += confusion_matrix(logits.argmax(1), y, self.num_classes, self.ignore_index).cpu()
        return {"loss": loss_sum / max(n, 1), "miou": mean_iou(confusion), "pixel_acc": pixel_accuracy(confusion),
                "iou": iou_percent(confusion)}


class Detection:
    metric = "map"             # COCO mAP@0.5:0.95, the checkpoint selector
    also_reported = ("map50",)  # summary.json: final and best-epoch mAP@0.5 beside the selector
    train_metric = "recall50"  # running: % of ground-truth boxes some prediction overlaps by IoU >= 0.5
    label = METRIC_LABELS["map"]

    def __init__(self, num_classes: int, input_hw: tuple[int, int]):
        self.num_classes, self.input_hw = num_classes, input_hw

    def strides(self, outputs) -> list[int]:
        return [self.input_hw[0] // o.shape[-2] for o in outputs]

    def loss(self, outputs, target: Tensor) -> Tensor:
        from ..detection.loss import detection_loss

        return detection_loss(outputs, target, self.strides(outputs))[0]

    @torch.no_grad()
    def hits(self, outputs, target: Tensor) -> tuple[int, int]:
        from ..detection.boxes import box_iou
        from ..detection.decode import decode
        from ..detection.targets import padded_targets

        boxes, _, _ = decode([o.detach().float() for o in outputs], self.strides(outputs))
        gt_boxes, gt_labels = padded_targets(target.detach(), boxes.device)
        if not gt_boxes.shape[1]:
            return 0, 0
        live = gt_labels >= 0
        found = (box_iou(gt_boxes, boxes).amax(2) >= 0.5) & live
        hit, counted = torch.stack([found.sum(), live.sum()]).cpu().tolist()  # one read from the device
        return hit, counted

    def distill(self, student, teacher, temperature: float) -> Tensor:
        """Per-output MSE to the teacher's raw maps (box distances and class logits alike)."""
        from .distill import output_distillation

        return output_distillation(student, teacher, loss="mse")

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data, normalize: Normalize, device: torch.device,
                 batch_size: int = 256) -> dict:
        """{"loss", "map" %, "map50" %, "per_class": AP %} of `model` in eval mode on `data`."""
        from ..detection.coco_map import MapAccumulator
        from ..detection.decode import detections
        from ..detection.loss import detection_loss

        model.eval()
        scored, loss_sum, n = MapAccumulator(), 0.0, 0
        for images, packed in iterate(data, batch_size, shuffle=False):
            outputs = [o.float() for o in model(normalize(images.to(device)))]
            targets = packed.to(device)
            loss_sum += detection_loss(outputs, targets, self.strides(outputs))[0].item() * len(images)
            n += len(images)
            scored.add(detections(outputs, self.strides(outputs)), targets)
        scores = scored.compute()
        return {"loss": loss_sum / max(n, 1), "map": scores["map"], "map50": scores["map50"],
                "per_class": scores["per_class"]}


def check_outputs(model: nn.Module, task, sample: Tensor, num_classes: int) -> None:
    """Refuse, in one line, a network whose outputs do not fit the task (before any training step):
    classification (N, classes), segmentation (N, classes, H, W), detection a tuple of (N, 4 +
    classes, h, w) maps."""
    from ..errors import ConfigError

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(sample)
    finally:
        model.train(was_training)
    kind = type(task).__name__.lower()

    def shape(o):
        return tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__

    if isinstance(task, Detection):
        ok = isinstance(out, (tuple, list)) and out and all(
            isinstance(o, Tensor) and o.dim() == 4 and o.shape[1] == 4 + num_classes for o in out)
        want = f"a tuple of (N, {4 + num_classes}, h, w) maps (4 box distances + {num_classes} class logits)"
        got = [shape(o) for o in out] if isinstance(out, (tuple, list)) else shape(out)
    elif isinstance(task, Segmentation):
        ok = isinstance(out, Tensor) and out.dim() == 4 and out.shape[1] == num_classes
        want, got = f"(N, {num_classes}, H, W) per-pixel logits", shape(out)
    else:
        ok = isinstance(out, Tensor) and out.dim() == 2 and out.shape[1] == num_classes
        want, got = f"(N, {num_classes}) logits", shape(out)
    if not ok:
        raise ConfigError(f"the network's output does not fit the {kind} task: it returns {got}, the task needs "
                          f"{want}")


def task_for(data: DatasetSplits, label_smoothing: float = 0.0):
    if data.task == "detection":
        return Detection(data.num_classes, data.input_hw)
    return task_named(data.task, data.num_classes, data.ignore_index, label_smoothing)


def task_named(task: str, num_classes: int = 0, ignore_index: int = 255,
               label_smoothing: float = 0.0) -> Classification | Segmentation:
    if task == "segmentation":
        return Segmentation(max(num_classes, 1), ignore_index, label_smoothing)
    return Classification(label_smoothing)
