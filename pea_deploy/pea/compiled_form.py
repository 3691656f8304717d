"""What torch.compile traces an ensemble as: the ensemble op ("op", the default: one node, its
Triton kernels on CUDA) or its ATen form ("pointwise": plain lerp/where that Inductor can fuse with
the BatchNorm before it). Each ensemble module holds its own choice (`compiled_form`), taken from
PEA_DEPLOY_COMPILED_FORM when it is built; `use(model, form)` changes it for a whole model. Eager
mode always runs the op's kernels; an ONNX export always traces the ATen form. benchmarks/gpu_check.py
times both."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import ConfigError

FORMS = ("op", "pointwise")


def _checked(form: str) -> str:
    if form not in FORMS:
        raise ConfigError(f"compiled form {form!r}: expected one of {', '.join(FORMS)}")
    return form


def default() -> str:
    """PEA_DEPLOY_COMPILED_FORM, else "op"."""
    return _checked(os.environ.get("PEA_DEPLOY_COMPILED_FORM", "op").strip().lower() or "op")


def use(model: nn.Module, form: str) -> nn.Module:
    """Set every ensemble of `model` to trace as `form` under torch.compile; returns the model."""
    _checked(form)
    for m in model.modules():
        if hasattr(m, "compiled_form"):
            m.compiled_form = form
    return model


def pointwise(ensemble: nn.Module) -> bool:
    """True while torch.compile traces `ensemble` and its form is "pointwise", and always during an
    ONNX export: ONNX has no translation of the ensemble op, and an unstripped ensemble must reach
    the file as the ops it computes (Erf, Sigmoid, Mul, ...), which pea-verify-ops then names."""
    if torch.onnx.is_in_onnx_export():
        return True
    return torch.compiler.is_compiling() and ensemble.compiled_form == "pointwise"
