"""convert(model, act="keep"): a user's trained network, its own activations walked to ReLU/ReLU6.

Every activation module of a registered class (nn.SiLU, nn.GELU, nn.Hardswish, nn.PReLU, ...; see
`pea_deploy.registry.OWN_ACTIVATIONS`) becomes an ensemble whose smooth branch *is that instance*:
its parameters and settings are kept and keep training, and at alpha = 0 the converted model is the
original, output for output. Gates (nn.Sigmoid, nn.Hardsigmoid multiplying a tensor) are not
activations and stay; nn.Hardsigmoid has an exact ReLU6 form, used for relu6 targets. Activations
called in forward() (F.silu, x * torch.sigmoid(x), ...) are first rewritten into modules with
torch.fx (functional.py).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from ..registry import GATES, OWN_ACTIVATIONS, VARIANTS
from .functional import rewrite_functional_activations
from .walk import OTHER_ACTIVATIONS, ensembles, nothing_to_convert, replace_modules


class HardsigmoidAsReLU6(nn.Module):
    """ReLU6(x + 3) / 6: bit for bit what nn.Hardsigmoid computes (ATen's hardsigmoid is this very
    expression; the test suite checks equality on 3M float32 values), built from ops a ReLU6 target runs.

    For export (`fold_for_deploy`, applied by pea-export to a copy) the division becomes a
    multiplication by 1/6, which int8 converters quantize and NPUs run (a Div by a constant stays
    float in onnxruntime's and PT2E's quantizers); it differs by at most one float32 ulp (6e-8)."""

    multiply = False

    def fold_for_deploy(self) -> None:
        self.multiply = True

    def forward(self, x: Tensor) -> Tensor:
        if self.multiply:
            return F.relu6(x + 3.0) * (1.0 / 6.0)
        return F.relu6(x + 3.0) / 6.0


def _classes(registry) -> dict[type, str]:
    return {e.load(): e.name for e in registry.entries()}


def convert_own(model: nn.Module, target: str = "relu", variant: str = "weighted", *,
                granularity: str = "element", alpha: float = 0.0, exact_gates: bool = True) -> nn.Module:
    """Wrap every own activation module of `model` (in place; a model whose forward() calls
    activations is first rewritten by torch.fx, and that new module is returned) into a `variant`
    ensemble walking to `target`. Returns the model to use."""
    model = rewrite_functional_activations(model, target)
    entry = VARIANTS.get(variant)
    cls = entry.load()
    extra = {"granularity": granularity} if "granularity" in entry.options else {}
    own = _classes(OWN_ACTIVATIONS)
    target_cls = nn.ReLU6 if target == "relu6" else nn.ReLU

    def make(child: nn.Module) -> nn.Module | None:
        kind = type(child)
        if kind is target_cls or kind not in own and not (exact_gates and target == "relu6"
                                                           and kind is nn.Hardsigmoid):
            return None
        if kind is nn.Hardsigmoid:
            made = HardsigmoidAsReLU6()
        else:
            made = cls(act=child, target=target, **extra)
            made.set_alpha(alpha)
        made.source = kind.__name__
        return made

    if replace_modules(model, make) == 0:
        raise nothing_to_convert(model, tuple(k for k in own if k is not target_cls))
    return model


def left_in_place(model: nn.Module, target: str) -> list[dict]:
    """Activation-like modules convert left as they were, with the reason (for the summary)."""
    gates = _classes(GATES)
    counts: dict[str, int] = {}
    seen: set[int] = {id(e.own) for e in ensembles(model).values() if e.own is not None}
    for m in model.modules():
        name = type(m).__name__
        if id(m) in seen or (type(m) not in gates and name.lower() not in OTHER_ACTIVATIONS) or \
                name.lower() in ("relu", "relu6"):
            continue
        seen.add(id(m))
        counts[name] = counts.get(name, 0) + 1
    rows = []
    for name, n in counts.items():
        gate = next((e for e in GATES.entries() if e.name == name), None)
        if gate is not None:
            note = (f"gate (multiplies a tensor), not an activation: left as it is; exports as "
                    f"{gate.info['exports_as']}, which a ReLU-only profile rejects")
            if gate.info.get("relu6_form") and target != "relu6":
                note += "; with target relu6 it becomes its exact ReLU6 form, ReLU6(x + 3) / 6"
        else:
            note = "no ReLU form: left as it is (the op checker will reject it on a ReLU-only target)"
        rows.append({"replaced": name, "count": n, "left": True, "note": note})
    return rows
