"""Object detection: boxes and IoU, anchor-free decoding, class-aware NMS, the task-aligned assigner
and loss, COCO-protocol mAP, and the procedural `shapes-det` data. Written here in torch (no
torchvision), so a detector trains, exports and is scored with the rest of pea-deploy."""

from .boxes import box_iou, cxcywh_to_xyxy, xyxy_to_cxcywh
from .coco_map import coco_map
from .decode import decode, detections
from .nms import batched_nms

__all__ = ["box_iou", "cxcywh_to_xyxy", "xyxy_to_cxcywh", "coco_map", "decode", "detections", "batched_nms"]
