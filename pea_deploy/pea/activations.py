"""The activations PEA ensembles combine: the smooth ones (Act) and the deploy targets (T).

Each is a pair of pure functions on tensors, the value and its derivative, so the fused ensemble can
recompute both from the saved input alone in backward. The names live in `pea_deploy.registry`
(ACTIVATIONS, TARGETS); `smooth_activation(name)` / `target_activation(name)` build them, and an
unknown name raises a ConfigError that lists the valid ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import ACTIVATIONS, TARGETS, resolve

TensorFn = Callable[[Tensor], Tensor]

_aten = torch.ops.aten
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """A named pointwise function with its derivative and the plain nn.Module it deploys as."""

    name: str
    fn: TensorFn
    grad: TensorFn | None
    module: Callable[[], nn.Module]
    # grad_out * d fn/dx as one fused ATen kernel where PyTorch has one (gelu_backward, ...)
    backward: Callable[[Tensor, Tensor], Tensor] | None = None
    # The name under which the fused CPU kernel computes fn and its derivative itself, with ATen's
    # formulas (cpu_kernels.ACT_CODES); None: the kernel takes fn(x) and vjp computed here
    kernel: str | None = None

    def vjp(self, grad_out: Tensor, x: Tensor) -> Tensor:
        """grad_out * fn'(x)."""
        if self.backward is not None:
            return self.backward(grad_out, x)
        if self.grad is None:  # a plug-in without a derivative: autograd through fn
            with torch.enable_grad():
                xr = x.detach().requires_grad_(True)
                return torch.autograd.grad(self.fn(xr), xr, grad_out)[0]
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


class Pointwise(nn.Module):
    """The plain module of an activation registered as a function (an Act-only net's layer)."""

    def __init__(self, name: str, fn: TensorFn):
        super().__init__()
        self.name, self.fn = name, fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def gelu() -> Activation:
    return Activation("gelu", nn.functional.gelu, _gelu_grad, nn.GELU, lambda g, x: _aten.gelu_backward(g, x), "gelu")


def swish(swish_beta: float = 1.0, name: str = "swish") -> Activation:
    fn, grad = _swish(swish_beta)
    if swish_beta == 1.0:
        return Activation(name, nn.functional.silu, grad, nn.SiLU, _aten.silu_backward, "silu")
    return Activation(name, fn, grad, lambda: Swish(swish_beta))


def silu(swish_beta: float = 1.0) -> Activation:
    return swish(swish_beta, "silu")


def mish() -> Activation:
    return Activation("mish", nn.functional.mish, _mish_grad, nn.Mish, _aten.mish_backward, "mish")


def elu() -> Activation:
    return Activation("elu", nn.functional.elu, _elu_grad, nn.ELU,
                      lambda g, x: _aten.elu_backward(g, 1.0, 1.0, 1.0, False, x), "elu")


def smooth_activation(name: str, swish_beta: float = 1.0) -> Activation:
    """The registered smooth activation `name` as value, derivative and module: built by its factory
    (the built-ins) or from the function, derivative and module a plug-in registered."""
    entry = ACTIVATIONS.get(name.lower() if isinstance(name, str) else name)
    if entry.info.get("keep"):
        raise ConfigError(f"act {entry.name!r} is not one function: it keeps each activation module of the "
                          f"model as its own ensemble's Act (convert(model, act={entry.name!r}))")
    if entry.builder is not None:
        options = {"swish_beta": swish_beta} if "swish_beta" in entry.options else {}
        return entry.load()(**options)
    fn, grad, module = (resolve(entry.info[k]) for k in ("fn", "grad", "module"))
    if not callable(fn):
        raise ConfigError(f"activation {entry.name!r}: its function is not callable ({fn!r})")
    return Activation(entry.name, fn, grad, module or (lambda: Pointwise(entry.name, fn)))


def _relu_grad(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)


def _relu6_grad(x: Tensor) -> Tensor:
    return ((x > 0) & (x < 6)).to(x.dtype)


def relu() -> Activation:
    return Activation("relu", torch.relu, _relu_grad, nn.ReLU, lambda g, x: _aten.threshold_backward(g, x, 0))


def relu6() -> Activation:
    return Activation("relu6", nn.functional.relu6, _relu6_grad, nn.ReLU6,
                      lambda g, x: _aten.hardtanh_backward(g, x, 0.0, 6.0))


def target_activation(name: str) -> Activation:
    """The deploy target `name` (relu or relu6)."""
    return TARGETS.get(name.lower() if isinstance(name, str) else name).load()()
