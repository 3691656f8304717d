"""Deploy-time rewrites that exporters cannot do themselves, applied to a copy before export.

torch.onnx folds BatchNorm only into a directly preceding conv. Modules whose BatchNorm follows
something else (ERFNet's downsampler: conv and max-pool concatenated, then BatchNorm) implement
`fold_for_deploy()`; without it the exported graph keeps a BatchNormalization that NPUs reject.
"""

from __future__ import annotations

import copy

from torch import nn


def deployable_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every `fold_for_deploy()` applied (the original is untouched)."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        fold = getattr(module, "fold_for_deploy", None)
        if callable(fold):
            fold()
    return folded
