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


def output_distillation(student, teacher, loss="mse", temperature: float = 1.0, weights=None) -> Tensor:
    """Distillation for any outputs: `student` and `teacher` are what the two networks return (a
    tensor, or tuples/lists/dicts of them), compared output by output in pytree order and summed
    with `weights` (one per output; default 1 each). `loss` per output: "mse" (regression heads,
    dense maps, box offsets), "kl" (distillation_loss over dim 1: class logits, per-pixel class
    maps), a list with one of those per output, or your function (student, teacher) -> Tensor.
    The teacher's outputs are detached."""
    from torch.utils._pytree import tree_flatten

    s, s_spec = tree_flatten(student)
    t, t_spec = tree_flatten(teacher)
    if s_spec != t_spec:
        raise ValueError(f"student and teacher return different structures: {s_spec} vs {t_spec}")
    losses = loss if isinstance(loss, (list, tuple)) else [loss] * len(s)
    weights = list(weights) if weights is not None else [1.0] * len(s)
    if len(losses) != len(s) or len(weights) != len(s):
        raise ValueError(f"{len(s)} outputs: give one loss and one weight per output")
    total = 0.0
    for out, ref, kind, w in zip(s, t, losses, weights):
        ref = ref.detach()
        if kind == "mse":
            term = F.mse_loss(out.float(), ref.float())
        elif kind == "kl":
            term = distillation_loss(out, ref, temperature)
        elif callable(kind):
            term = kind(out, ref)
        else:
            raise ValueError(f"loss must be 'mse', 'kl' or a function, got {kind!r}")
        total = total + w * term
    return total
