"""Registry of the activations PEA ensembles combine: the smooth ones (Act) and the deploy targets (T).

Each entry is a pair of pure functions on tensors, the value and its derivative, so the fused
ensemble can recompute both from the saved input alone in backward. Names are looked up with
`smooth_activation(name)` / `target_activation(name)`; an unknown name raises a ConfigError that
lists the valid ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import unknown_name

TensorFn = Callable[[Tensor], Tensor]

_aten = torch.ops.aten
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """A named pointwise function with its derivative and the plain nn.Module it deploys as."""

    name: str
    fn: TensorFn
    grad: TensorFn
    module: Callable[[], nn.Module]
    # grad_out * d fn/dx as one fused ATen kernel where PyTorch has one (gelu_backward, ...)
    backward: Callable[[Tensor, Tensor], Tensor] | None = None

    def vjp(self, grad_out: Tensor, x: Tensor) -> Tensor:
        """grad_out * fn'(x)."""
        if self.backward is not None:
            return self.backward(grad_out, x)
        return grad_out * self.grad(x)


def _gelu_grad(x: Tensor) -> Tensor:
    cdf = 0.5 * (1.0 + torch.erf(x * _INV_SQRT2))
    pdf = torch.exp(-0.5 * x * x) * _INV_SQRT_2PI
    return cdf + x * pdf


def _swish(beta: float) -> tuple[TensorFn, TensorFn]:
    def fn(x: Tensor) -> Tensor:
        return x * torch.sigmoid(beta * x)

    def grad(x: Tensor) -> Tensor:
        s = torch.sigmoid(beta * x)
        return s + beta * x * s * (1.0 - s)

    return fn, grad


def _mish_grad(x: Tensor) -> Tensor:
    t = torch.tanh(nn.functional.softplus(x))
    return t + x * (1.0 - t * t) * torch.sigmoid(x)


def _elu_grad(x: Tensor) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.exp(torch.clamp(x, max=0.0)))


class Swish(nn.Module):
    """x * sigmoid(beta * x); beta == 1 is SiLU (exported as nn.SiLU then)."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.beta * x)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


def smooth_activation(name: str, swish_beta: float = 1.0) -> Activation:
    """The smooth activation `name` (gelu, swish/silu, mish, elu) as value, derivative and module."""
    key = name.lower()
    if key == "gelu":
        return Activation("gelu", nn.functional.gelu, _gelu_grad, nn.GELU,
                          lambda g, x: _aten.gelu_backward(g, x))
    if key in ("swish", "silu"):
        fn, grad = _swish(swish_beta)
        if swish_beta == 1.0:
            return Activation(key, nn.functional.silu, grad, nn.SiLU, _aten.silu_backward)
        return Activation(key, fn, grad, lambda: Swish(swish_beta))
    if key == "mish":
        return Activation("mish", nn.functional.mish, _mish_grad, nn.Mish, _aten.mish_backward)
    if key == "elu":
        return Activation("elu", nn.functional.elu, _elu_grad, nn.ELU)
    raise unknown_name("activation", name, SMOOTH_NAMES)


def _relu_grad(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)


def _relu6_grad(x: Tensor) -> Tensor:
    return ((x > 0) & (x < 6)).to(x.dtype)


_TARGETS = {
    "relu": Activation("relu", torch.relu, _relu_grad, nn.ReLU,
                       lambda g, x: _aten.threshold_backward(g, x, 0)),
    "relu6": Activation("relu6", nn.functional.relu6, _relu6_grad, nn.ReLU6,
                        lambda g, x: _aten.hardtanh_backward(g, x, 0.0, 6.0)),
}

SMOOTH_NAMES = ("gelu", "swish", "silu", "mish", "elu")
TARGET_NAMES = tuple(_TARGETS)


def target_activation(name: str) -> Activation:
    """The deploy target `name` (relu or relu6)."""
    try:
        return _TARGETS[name.lower()]
    except KeyError:
        raise unknown_name("target", name, TARGET_NAMES) from None
