"""Turn a ReLU network into a PEA training network and back into a deployable ReLU network.

`convert` (the "prepare" step) swaps nn.ReLU (and nn.ReLU6 for target relu6) modules for ensembles;
`strip` (the "deploy" step) asks each ensemble for its deploy form once every alpha is exactly 1.
Both keep module sharing intact: one ReLU instance used in several places (as torchvision's ResNet
blocks do) becomes one ensemble used in the same places.
"""

from __future__ import annotations

from torch import nn

from ..errors import AlphaNotOneError
from ..registry import ACTIVATIONS, GRANULARITIES, TARGETS, VARIANTS
from .ensemble import PEAEnsemble
from .own import convert_own, left_in_place
from .walk import ensembles, nothing_to_convert, replace_modules

def convert(model: nn.Module, act: str = "gelu", variant: str = "weighted", target: str = "relu",
            *, swish_beta: float = 1.0, granularity: str = "element", alpha: float = 0.0) -> nn.Module:
    """Replace every nn.ReLU (and nn.ReLU6 when `target` is relu6) of `model`, in place, by a PEA
    ensemble of `act` and `target`; return the model (use the returned one: see act="keep").

    act="keep": the model's own activation modules (nn.SiLU, nn.GELU, nn.Hardswish, nn.PReLU, ...)
    become ensembles whose smooth branch is that very module, so at alpha = 0 the model is unchanged
    (pea_deploy.pea.own; a model calling activations in forward() is rewritten by torch.fx first and
    the returned module is a GraphModule).
    variant: "weighted" (Eq. 1) or "stochastic" (Eq. 3); granularity applies to stochastic only.
    Raises ConversionError when nothing is found to convert, naming what the model holds instead.
    """
    variant_entry = VARIANTS.get(variant)
    GRANULARITIES.check(granularity)
    TARGETS.check(target)
    if ACTIVATIONS.get(act).info.get("keep"):
        return convert_own(model, target, variant, granularity=granularity, alpha=alpha)
    kinds: tuple[type, ...] = (nn.ReLU, nn.ReLU6) if target.lower() == "relu6" else (nn.ReLU,)
    cls = variant_entry.load()

    def make(child: nn.Module) -> nn.Module | None:
        if type(child) not in kinds:
            return None
        extra = {"granularity": granularity} if "granularity" in variant_entry.options else {}
        ens = cls(act=act, target=target, swish_beta=swish_beta, **extra)
        ens.set_alpha(alpha)
        ens.source = type(child).__name__  # what it replaced, for conversion_summary
        return ens

    if replace_modules(model, make) == 0:
        raise nothing_to_convert(model, kinds)
    return model


def replace_relus_with_act(model: nn.Module, act: str = "gelu", *, swish_beta: float = 1.0) -> nn.Module:
    """The "upper limit" network: every nn.ReLU/nn.ReLU6 becomes the plain smooth activation."""
    from .activations import smooth_activation

    spec = smooth_activation(act, swish_beta)
    n = replace_modules(model, lambda c: spec.module() if type(c) in (nn.ReLU, nn.ReLU6) else None)
    if n == 0:
        raise nothing_to_convert(model, (nn.ReLU, nn.ReLU6))
    return model


def conversion_summary(model: nn.Module, target: str | None = None) -> list[dict]:
    """What `convert` made of the model: per (replaced module, variant, Act, target) the number of
    distinct ensembles, with a note where the deployed activation differs from the model's own
    (target relu6 turns nn.ReLU modules into ReLU6 too); activations rewritten from forward() calls;
    and, with `target`, what was left in place and why (gates, activations without a ReLU form)."""
    groups: dict[tuple, int] = {}
    for ens in ensembles(model).values():
        if getattr(ens.own, "pea_from_call", None):
            continue  # a call in forward() rewritten into a module: counted as that call below
        key = (getattr(ens, "source", "?"), ens.variant, ens.act.name, ens.target.name, ens.own is not None)
        groups[key] = groups.get(key, 0) + 1
    rows = []
    for (source, variant, act, target_name, own), n in groups.items():
        if source.lower() in ("relu", "relu6") and source.lower() != target_name:
            note = f"deploys as {target_name.upper()}, not as the model's own {source}"
        elif own:
            note = f"its own {source} instance is the smooth branch (parameters kept)"
        else:
            note = ""
        rows.append({"replaced": source, "count": n, "variant": variant, "act": act, "target": target_name,
                     "note": note})
    exact = sum(1 for m in model.modules() if type(m).__name__ == "HardsigmoidAsReLU6")
    if exact:
        rows.append({"replaced": "Hardsigmoid", "count": exact, "became": "ReLU6(x + 3) / 6",
                     "note": "gate in its exact ReLU6 form (equal output)"})
    calls: dict[tuple, list[str]] = {}
    for r in getattr(model, "pea_functional_rewrites", []):
        calls.setdefault((r["call"], r["module"]), []).append(r.get("path") or "the model")
    rows += [{"replaced": call, "count": len(paths), "became": f"module {module} (torch.fx)",
              "note": f"called in forward() of {', '.join(dict.fromkeys(paths))}: rewritten into a module "
                      "there, then converted like one"}
             for (call, module), paths in calls.items()]
    if target is not None:
        rows += left_in_place(model, target)
    return rows


def describe_conversion(rows: list[dict]) -> str:
    parts = []
    for r in rows:
        if r.get("left"):
            what = f"{r['count']} x nn.{r['replaced']} left"
        elif "became" in r:
            what = f"{r['count']} x {r['replaced']} -> {r['became']}"
        elif r["variant"] == "hard swap":
            what = f"{r['count']} x nn.{r['replaced']} -> {r['target'].upper()} (hard swap)"
        else:
            what = f"{r['count']} x nn.{r['replaced']} -> {r['variant']} ensemble ({r['act']} -> {r['target']})"
        parts.append(what + (f" [{r['note']}]" if r["note"] else ""))
    return "; ".join(parts)


def alphas(model: nn.Module) -> dict[str, float]:
    """Current alpha of every ensemble, by module path."""
    return {name: float(m.alpha) for name, m in ensembles(model).items()}


def set_alpha(model: nn.Module, value: float) -> int:
    """Set alpha of every ensemble of `model`; returns how many ensembles were set."""
    mods = ensembles(model)
    for m in mods.values():
        m.set_alpha(value)
    return len(mods)


def require_alpha_one(model: nn.Module, context: str = "", subject: str = "") -> dict[str, float]:
    """Raise AlphaNotOneError listing each ensemble whose alpha is not exactly 1 (`subject` leads the
    message, `context` ends it); return every ensemble's alpha when all are 1."""
    found = alphas(model)
    below = {name: a for name, a in found.items() if a != 1.0}
    if below:
        listed = ", ".join(f"{n} (alpha={a:.6g})" for n, a in list(below.items())[:6])
        more = f" and {len(below) - 6} more" if len(below) > 6 else ""
        suffix = f"; {context}" if context else ""
        lead = f"{subject}: " if subject else ""
        raise AlphaNotOneError(
            f"{lead}{len(below)} of {len(found)} ensemble(s) have alpha < 1, the network is not yet ReLU-only: "
            f"{listed}{more}{suffix}")
    return found


def strip(model: nn.Module) -> nn.Module:
    """Replace, in place, every ensemble by its target module (nn.ReLU / nn.ReLU6); return the model.

    Refuses (AlphaNotOneError) unless every alpha is exactly 1: only then is the stripped network
    the same function as the trained one. There is deliberately no way to strip below 1.
    """
    require_alpha_one(model)
    replace_modules(model, lambda c: c.deploy_module() if isinstance(c, PEAEnsemble) else None)
    return model
