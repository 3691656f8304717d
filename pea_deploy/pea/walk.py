"""Walking a module tree: the one walker `convert`, `convert(act="keep")` (own.py) and `strip` share.

`replace_modules` swaps children in place and keeps module sharing intact (one instance registered
under several names becomes one replacement under the same names); `ensembles` finds the ensembles;
`nothing_to_convert` explains, in one error, why a walk found nothing to replace.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from torch import nn

from ..errors import ConversionError
from ..registry import smooth_activation_labels
from .ensemble import PEAEnsemble

# Activation classes a model may hold besides the registered smooth ones (those come from the registry).
OTHER_ACTIVATIONS = ("relu", "relu6", "sigmoid", "tanh", "hardswish", "hardsigmoid", "softplus", "leakyrelu",
                      "prelu", "selu", "celu", "softsign", "hardtanh", "tanhshrink", "logsigmoid", "rrelu")


def replace_modules(model: nn.Module, make: Callable[[nn.Module], nn.Module | None]) -> int:
    """Replace every child for which `make` returns a module; the same instance maps to the same
    replacement wherever it is registered. Returns how many distinct instances were replaced."""
    memo: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        # _modules, not named_children(): the latter hides a second name for the same instance
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            key = id(child)
            if key not in memo:
                new = make(child)
                if new is None:
                    continue
                memo[key] = new
            setattr(parent, name, memo[key])
    return len(memo)


def functional_relus(model: nn.Module) -> list[str]:
    """Best-effort: names of functional ReLU calls found by tracing the model with torch.fx."""
    try:
        import torch.fx

        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        return []
    found = []
    for node in graph.nodes:
        target = getattr(node.target, "__name__", str(node.target))
        if node.op in ("call_function", "call_method") and "relu" in target.lower():
            found.append(f"{target} ({node.name})")
    return found


def nothing_to_convert(model: nn.Module, kinds: tuple[type, ...]) -> ConversionError:
    wanted = " or ".join(f"nn.{k.__name__}" for k in kinds)
    known = {n.lower() for n in (*OTHER_ACTIVATIONS, *smooth_activation_labels())}
    acts = Counter(type(m).__name__ for m in model.modules() if type(m).__name__.lower() in known)
    if any(isinstance(m, PEAEnsemble) for m in model.modules()):
        return ConversionError("model is already converted: it holds PEA ensembles")
    parts = [f"convert found no {wanted} module to replace"]
    if acts:
        parts.append("activation modules present: " + ", ".join(f"{n} x{c}" for n, c in acts.items()))
    functional = functional_relus(model)
    if functional:
        parts.append("functional calls in forward(): " + ", ".join(functional[:5])
                     + " - PEA needs nn.ReLU modules, replace F.relu/torch.relu calls with them")
    elif not acts:
        parts.append("no activation modules at all: does forward() call F.relu? "
                     "PEA can only replace nn.ReLU modules")
    return ConversionError("; ".join(parts))


def ensembles(model: nn.Module) -> dict[str, PEAEnsemble]:
    """Every distinct ensemble of `model` by its first module path."""
    found: dict[str, PEAEnsemble] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, PEAEnsemble) and id(module) not in seen:
            seen.add(id(module))
            found[name] = module
    return found
