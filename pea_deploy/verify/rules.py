"""The hardware rules. Each rule is a small function whose docstring is the user-facing rule text;
it returns (reason_code, message) pairs for one node, or for the model as a whole. A rule says which
op kinds it applies to (`@applies_to`); `check_graph` runs on each node only the rules for its kind."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from .graph import Graph, Node
from .ops import QDQ, STRUCTURAL, activation_kinds, op_kind
from .patterns import hint_for, likely_activation
from .profile import Profile

_INF = 3.0e38
_GEOMETRY_KINDS = frozenset({"conv", "conv_transpose", "max_pool", "average_pool", "resize", "maximum", "minimum"})


def applies_to(kinds):
    """Mark a rule as applying only to nodes of these kinds (a callable is called for the set);
    rules without the mark apply to every node."""
    def mark(rule):
        rule.kinds = kinds
        return rule
    return mark


@dataclass
class Violation:
    node_index: int | None
    node_name: str
    graph: str
    op: str
    fused_activation: str | None
    reason_code: str
    rule: str
    message: str
    likely: str | None = None
    hint: str = ""

    @property
    def where(self) -> str:
        if self.node_index is None:
            return self.node_name
        prefix = "" if self.graph == "main" else f"{self.graph}/"
        return f"{prefix}#{self.node_index} {self.node_name}".rstrip()


def _clip_kind(bounds) -> str | None:
    lo, hi = bounds if bounds else (None, None)
    if isinstance(lo, str) or isinstance(hi, str):
        return None  # bounds computed at run time: cannot prove it is a ReLU
    lo = -_INF if lo is None else lo
    hi = _INF if hi is None else hi
    if lo == 0 and hi == 6:
        return "relu6"
    if lo == 0 and hi >= _INF * 0.99:
        return "relu"
    return None


@applies_to(activation_kinds)
def rule_activation(g: Graph, node: Node, p: Profile):
    """Only ReLU and the ReLU6 the target runs are allowed as activations (Clip only as min 0 /
    max 6 or min 0 / no max)."""
    kind = node.kind if node.kind in ("relu", "relu6") else None
    if node.kind == "clip":
        kind = _clip_kind(node.attrs.get("clip"))
        if kind is None:
            lo, hi = node.attrs.get("clip", (None, None))
            return [("activation.clip", f"Clip(min={lo}, max={hi}) is neither ReLU (0, none) nor ReLU6 (0, 6)")]
    if kind is not None:
        if kind in p.activations:
            return []
        return [(f"activation.{kind}", f"{kind.upper()} is not run by {p.name} (it runs {', '.join(sorted(p.activations))})")]
    return [("activation.not_relu", f"activation {node.op} is not ReLU/ReLU6: {policy_or_hardware(g, node.op, p)}")]


def policy_or_hardware(g: Graph, op: str, p: Profile) -> str:
    """Whose rule it is: pea-deploy's ReLU policy (the hardware would run it) or the hardware's."""
    hardware = p.rules_for(g.format).hardware_activations
    if op in hardware:
        return (f"rejected by pea-deploy's ReLU policy ({p.name} hardware also runs "
                f"{', '.join(sorted(hardware))})")
    if hardware:
        return f"{p.name} does not run it"
    return f"{p.name} is held to pea-deploy's ReLU policy"


def rule_fused_activation(g: Graph, node: Node, p: Profile):
    """A fused activation (TFLite) must be NONE or a ReLU/ReLU6 the target runs."""
    fused = node.fused_activation
    if fused in (None, "NONE"):
        return []
    kind = {"RELU": "relu", "RELU6": "relu6"}.get(fused)
    if kind in p.activations:
        return []
    return [("activation.fused", f"fused activation {fused} on {node.op}: {policy_or_hardware(g, fused, p)}")]


def rule_supported_op(g: Graph, node: Node, p: Profile):
    """Every op must be in the target's op list (no CUSTOM or Flex ops: they run on the CPU)."""
    if node.kind in activation_kinds():
        return []
    if node.kind == "custom":
        return [("op.custom", f"{node.op} is a custom/Flex op: no accelerator runs it")]
    rules = p.rules_for(g.format)
    if node.op in rules.ops or node.op in rules.output_only or node.kind in STRUCTURAL:
        return []
    if "::" in node.op:
        return [("op.unsupported", f"{node.op} runs outside the delegate, in ExecuTorch's portable CPU kernels")]
    return [("op.unsupported", f"{node.op} is not supported by {p.name}")]


def _feeds_output(g: Graph, node: Node, hops: int = 4) -> bool:
    """True when `node` produces a model output, directly or through Q/DQ/Reshape-like ops."""
    outputs = set(g.outputs)
    frontier = [node]
    for _ in range(hops):
        nxt = []
        for n in frontier:
            if any(o in outputs for o in n.outputs):
                return True
            for o in n.outputs:
                nxt += [c for c in g.consumers_of(n, o) if c.kind in (*QDQ, "reshape", "identity")]
        frontier = nxt
    return False


def rule_output_only(g: Graph, node: Node, p: Profile):
    """Ops the target runs only at the graph's output (e.g. Softmax) must produce a model output."""
    if node.op in p.rules_for(g.format).output_only and node.graph == "main" and not _feeds_output(g, node):
        return [("op.not_at_output", f"{node.op} is allowed only at the model's output")]
    return []


def rule_limits(g: Graph, node: Node, p: Profile):
    """Kernel size, stride, dilation, depthwise multiplier and resize factor must be within the target's
    limits; where the target asks it, strides equal in both axes, resize factors powers of two,
    inputs quantized as the output, no fused activation, a one-dimensional input or output, at most
    so many elements, and a reduction or pad along height and width only."""
    limits = p.rules_for(g.format).limits.get(node.op)
    if not limits:
        return []
    found = _geometry_limits(g, node, p, limits) if node.kind in _GEOMETRY_KINDS else []
    return found + _shape_limits(g, node, p, limits)


def _shape(g: Graph, name: str | None) -> list | None:
    t = g.tensors.get(name) if name else None
    return t.shape if t is not None and t.shape and all(isinstance(d, int) for d in t.shape) else None


def _shape_limits(g: Graph, node: Node, p: Profile, limits: dict) -> list[tuple[str, str]]:
    found = []
    if limits.get("no_fused_activation") and node.fused_activation not in (None, "NONE"):
        found.append(("limit.fused_activation", f"{node.op} with a fused {node.fused_activation}: {p.name} runs "
                                                f"{node.op} without a fused activation only"))
    src = _shape(g, node.inputs[0]) if node.inputs else None
    dst = _shape(g, node.outputs[0]) if node.outputs else None
    for key, shape, role in (("one_dimensional_input", src, "input"), ("one_dimensional_output", dst, "output")):
        if limits.get(key) and shape and sum(d > 1 for d in shape) > 1:
            found.append(("limit.rank", f"{node.op} {role} has shape {shape}; {p.name} needs it one-dimensional"))
    if "max_elements" in limits and src and prod(src) > limits["max_elements"]:
        found.append(("limit.elements", f"{node.op} input has {prod(src)} elements; {p.name}'s limit is "
                                        f"{limits['max_elements']}"))
    if limits.get("spatial_axes_only") and src and dst and len(src) == 4:
        channel = 1 if g.format == "onnx" else -1   # NCHW / NHWC
        if dst[0] != src[0] or dst[channel] != src[channel]:
            found.append(("limit.axes", f"{node.op} changes the batch or channel axis ({src} -> {dst}); "
                                        f"{p.name} reduces or pads along height and width only"))
    return found


def _geometry_limits(g: Graph, node: Node, p: Profile, limits: dict) -> list[tuple[str, str]]:
    a = node.attrs
    kernel, stride, dil, mult = a.get("kernel", []), a.get("stride", []), a.get("dilation", []), a.get("depth_multiplier", 1)
    dilated = [(k - 1) * d + 1 for k, d in zip(kernel, dil)] if len(dil) == len(kernel) else kernel
    found = []
    for key, values, what in (("max_kernel", kernel, "kernel"), ("max_stride", stride, "stride"),
                              ("max_dilation", dil, "dilation"), ("max_dilated_kernel", dilated, "dilated kernel"),
                              ("max_depth_multiplier", [mult], "depth multiplier")):
        if key in limits and values and max(values) > limits[key]:
            found.append((f"limit.{what.replace(' ', '_')}", f"{node.op} {what} {values} exceeds {p.name}'s limit {limits[key]}"))
    if limits.get("square_stride") and len(stride) == 2 and stride[0] != stride[1]:
        found.append(("limit.stride", f"{node.op} stride {stride} is not the same in both axes ({p.name})"))
    scale = _resize_scale(g, node)
    if scale is not None:
        if "max_scale" in limits and max(scale) > limits["max_scale"]:
            found.append(("limit.scale", f"{node.op} scale {scale} exceeds {p.name}'s limit {limits['max_scale']}"))
        if limits.get("power_of_two_scale") and any(f != int(f) or int(f) & (int(f) - 1) for f in scale):
            found.append(("limit.scale", f"{node.op} scale {scale}: {p.name} resizes by powers of two only"))
    if limits.get("same_quantization"):
        quants = {g.tensors[t].quantization for t in node.inputs + node.outputs if t in g.tensors}
        if len(quants) > 1:
            found.append(("limit.quantization", f"{node.op}: inputs and output must share one quantization on {p.name}"))
    return found


def _resize_scale(g: Graph, node: Node) -> list[float] | None:
    """Output / input height and width of a 4-D resize: an ONNX Resize's constant scales, else its
    sizes or the static shapes (NCHW); a TFLite resize's static shapes (NHWC)."""
    if node.kind != "resize" or not node.inputs or not node.outputs:
        return None
    scales = node.attrs.get("resize_scales")
    if g.format == "onnx" and scales and len(scales) == 4:
        return scales[2:4]
    src, dst = g.tensors.get(node.inputs[0]), g.tensors.get(node.outputs[0])
    hw = slice(2, 4) if g.format == "onnx" else slice(1, 3)
    src_hw = src.shape[hw] if src and src.shape and len(src.shape) == 4 else []
    sizes = node.attrs.get("resize_sizes")
    dst_hw = sizes[2:4] if sizes and len(sizes) == 4 else (
        dst.shape[hw] if dst and dst.shape and len(dst.shape) == 4 else [])
    if len(src_hw) != 2 or len(dst_hw) != 2 or not all(isinstance(d, (int, float)) and d > 0 for d in src_hw + dst_hw):
        return None
    return [dst_hw[0] / src_hw[0], dst_hw[1] / src_hw[1]]


_INT_TYPES = {"int8", "uint8"}
_SHAPE_KINDS = {"reshape", "squeeze", "unsqueeze", "flatten", "pad", "resize", "constant", "identity"}


def rule_int8(g: Graph, node: Node, p: Profile):
    """Int8 targets: every tensor an op reads or writes is 8-bit integer (int32 bias constants
    allowed); an ONNX op must sit between DequantizeLinear and QuantizeLinear (QDQ)."""
    if not p.int8:
        return []
    if node.attrs.get("delegate_boundary"):
        return []  # an ExecuTorch delegate takes and returns float tensors and converts them at its edge
    if not g.qdq:
        if node.kind == "dequantize":
            return [("int8.float_compute", f"{node.op} produces float tensors inside the model")]
        bad = []
        for t in node.inputs + node.outputs:
            ten = g.tensors.get(t)
            if ten is None or ten.dtype in _INT_TYPES or (ten.is_constant and ten.dtype in ("int32", "int64")):
                continue
            bad.append(f"{ten.name or t} ({ten.dtype})")
        return [("int8.float_tensor", f"{node.op} uses non-int8 tensor(s): {', '.join(bad[:3])}")] if bad else []
    if node.kind in QDQ or node.kind in STRUCTURAL:
        return []
    data_inputs = [t for t in node.inputs if t and not (g.tensors.get(t) and g.tensors[t].is_constant
                                                        and g.tensors[t].dtype in ("int64", "int32"))]
    if node.kind in _SHAPE_KINDS:
        data_inputs = data_inputs[:1]
    float_in = [t for t in data_inputs if (g.producer(node, t) is None or g.producer(node, t).kind != "dequantize")]
    if float_in:
        return [("int8.float_compute", f"{node.op} runs in float: input {float_in[0]} does not come from DequantizeLinear")]
    return []


def rule_outer_dims(g: Graph, node: Node, p: Profile):
    """Only the target's innermost dimensions of a tensor may exceed 1 (a batch of 2 is refused)."""
    n = p.innermost_dims
    # an op of constants only (Constant, a weight's DequantizeLinear) computes a weight, not an activation
    if not n or all(g.tensors.get(t) is not None and g.tensors[t].is_constant for t in node.inputs if t):
        return []
    for name in node.outputs:
        shape = _shape(g, name)
        if shape and len(shape) > n and any(d > 1 for d in shape[:-n]):
            return [("shape.outer_dims", f"{node.op} output {name} has shape {shape}; on {p.name} only the "
                                         f"{n} innermost dimensions may exceed 1")]
    return []


NODE_RULES = (rule_activation, rule_fused_activation, rule_supported_op, rule_output_only, rule_limits, rule_int8,
              rule_outer_dims)


def model_rules(g: Graph, p: Profile) -> list[tuple[str, str, str]]:
    """Model-level rules: static shapes, maximum rank, int8 model inputs/outputs (TFLite)."""
    found = []
    for role, names in (("input", g.inputs), ("output", g.outputs)):
        for t in names:
            ten = g.tensors.get(t)
            if ten is None or ten.is_constant:
                continue
            label = f"{role} {ten.name or t}"
            if p.static_shapes and (ten.shape is None or any(not isinstance(d, int) or d <= 0 for d in ten.shape)):
                found.append((label, "shape.dynamic", f"{label} has a dynamic shape {ten.shape}; {p.name} needs static shapes"))
            if ten.shape is not None and len(ten.shape) > p.max_rank:
                found.append((label, "shape.rank", f"{label} has rank {len(ten.shape)} > {p.max_rank}"))
            # an ExecuTorch program's I/O is float by its calling convention; its delegate converts
            if p.int8 and not g.qdq and g.format != "pte" and ten.dtype not in _INT_TYPES:
                found.append((label, "int8.io", f"{label} is {ten.dtype}; {p.name} needs int8 model I/O"))
    return found


def rule_text(rule) -> str:
    """The first paragraph of a rule's docstring: the rule as a user reads it."""
    return " ".join((rule.__doc__ or rule.__name__).split("\n\n")[0].split()).rstrip(".")


def rules_for_kind(kind: str, rules=NODE_RULES) -> list:
    """The node rules that apply to op kind `kind`, in rule order."""
    found = []
    for rule in rules:
        kinds = getattr(rule, "kinds", None)
        kinds = kinds() if callable(kinds) else kinds
        if kinds is None or kind in kinds:
            found.append(rule)
    return found


# Ops that compute nothing at inference or only constants: a simplifier removes them.
_FOLDABLE = frozenset({"dropout", "constant_of_shape", "shape", "gather_shape"})


def _float_model(g: Graph) -> bool:
    """No quantization at all: no Q/DQ (ONNX), no 8-bit tensor (TFLite)."""
    if g.qdq:
        return not any(n.kind in QDQ for n in g.nodes)
    return not any(t.dtype in _INT_TYPES or t.dtype == "int16" for t in g.tensors.values())  # 16x8 counts


def _model_level_findings(g: Graph, p: Profile, found: list[Violation]) -> list[Violation]:
    """One finding where hundreds of node lines would say the same: a float model checked against an
    int8 target, and ops a simplifier folds away (Dropout, ConstantOfShape, ...)."""
    out = found
    if p.int8 and _float_model(g):
        computing = sum(1 for n in g.nodes if n.kind not in STRUCTURAL)
        out = [v for v in out if not v.reason_code.startswith("int8.")]
        out.append(Violation(None, "model", "main", "-", None, "int8.not_quantized", "Int8 targets run quantized "
                             "models only", f"not quantized: all {computing} ops compute in float; {p.name} runs 8-bit models "
                             f"only: quantize it first (pea-export builds the int8 artefacts)"))
    foldable = [v for v in out if v.reason_code == "op.unsupported" and v.node_index is not None
                and v.op and op_kind(g.format, v.op) in _FOLDABLE]
    if foldable:
        ops = sorted({v.op for v in foldable})
        out = [v for v in out if v not in foldable]
        out.append(Violation(None, "model", "main", "-", None, "graph.not_folded", "Fold constant and no-op ops "
                             "first", f"fold first (onnxsim): {len(foldable)} op(s) that compute nothing at "
                             f"inference or only constants ({', '.join(ops)})"))
    return out


def check_graph(g: Graph, p: Profile) -> list[Violation]:
    if g.format == "pte" and not p.pte.ops:
        return [Violation(None, "model", "main", "-", None, "format.not_targeted", "The target runs this file format",
                          f"{p.name} runs no ExecuTorch program: a .pte runs on a CPU through ExecuTorch's delegates "
                          f"(check it with --target xnnpack)")]
    out = []
    dispatch: dict[str, list] = {}
    for node in g.nodes:
        if node.kind not in dispatch:
            dispatch[node.kind] = rules_for_kind(node.kind)
        for rule in dispatch[node.kind]:
            for code, msg in rule(g, node, p):
                likely = likely_activation(g, node) if code.startswith("activation.") else None
                text = f"{msg} ({node.op} in a {likely} pattern)" if likely and likely != node.op else msg
                out.append(Violation(node.index, node.name, node.graph, node.op, node.fused_activation,
                                     code, rule_text(rule), text, likely,
                                     hint_for(likely) if code.startswith("activation") else ""))
    for label, code, msg in model_rules(g, p):
        out.append(Violation(None, label, "main", "-", None, code, rule_text(model_rules), msg))
    return _model_level_findings(g, p, out)
