"""A profile as a supported-operators document, generated from the data and rule texts the checker
itself uses, so the document cannot drift from what `pea-verify-ops` enforces."""

from __future__ import annotations

from .profile import Profile
from .rules import NODE_RULES, model_rules, rule_text


def _ops(names) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names)) or "(none)"


def _hardware(p: Profile) -> str:
    hw = sorted(p.tflite.hardware_activations or p.onnx.hardware_activations)  # TFLite: what the compiler reads
    return (f"; that is pea-deploy's ReLU policy: the {p.name} hardware also runs {', '.join(hw)}" if hw else "")


def describe_profile(p: Profile) -> str:
    lines = [f"# Target `{p.name}`", "", p.description, "", f"Based on: {p.based_on}", "",
             f"- activations: {', '.join(sorted(a.upper() for a in p.activations))} only "
             f"(any other, also decomposed, is rejected)" + _hardware(p),
             f"- int8: {'every tensor 8-bit, no float compute, 8-bit model I/O' if p.int8 else 'float or 8-bit'}",
             f"- static shapes: {'required on model inputs and outputs' if p.static_shapes else 'not required'}",
             f"- max tensor rank: {p.max_rank}" + (f"; only the {p.innermost_dims} innermost dimensions of any "
                                                    f"tensor may exceed 1" if p.innermost_dims else ""),
             "- pea-export: " + (", ".join(f"{k.replace('_', ' ')} `{v}`" for k, v in p.export.items())
                                 or "default settings"), ""]
    for fmt in ("onnx", "tflite"):
        r = p.rules_for(fmt)
        lines += [f"## {fmt.upper() if fmt == 'onnx' else 'TFLite'}", "", f"Supported operators: {_ops(r.ops)}", ""]
        if r.output_only:
            lines += [f"Only where they produce a model output: {_ops(r.output_only)}", ""]
        if r.limits:
            lines += ["| operator | limit | value |", "|---|---|---:|"]
            lines += [f"| `{op}` | {k.replace('_', ' ')} | {v} |" for op, t in sorted(r.limits.items())
                      for k, v in t.items()]
            lines.append("")
    lines += ["## Rules", ""] + [f"- {rule_text(rule)}." for rule in (*NODE_RULES, model_rules)] + [""]
    return "\n".join(lines)
