"""Knowledge distillation from the original smooth network (Hinton et al. 2015): the ReLU student
matches the teacher's softened outputs, the way "ReLUifying" work recovers a pretrained network's
accuracy (Kim et al., ACCV 2024)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), summed over classes (dim 1) and
    averaged over everything else (images, or pixels for segmentation logits)."""
    t = temperature
    log_p_teacher = F.log_softmax(teacher.float() / t, dim=1)
    log_p_student = F.log_softmax(student.float() / t, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1)
    return kl.mean() * (t * t)
