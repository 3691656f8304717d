"""Target accelerator profiles: TOML data files, validated on load, built-in or the user's own.

Schema (every key checked; unknown keys are errors):

    extends = "ethos-u55"              # optional: start from this built-in profile; tables merge
                                       #   key by key, every other value here replaces the base's
    name = "my-npu"                    # required
    description = "one line"           # required
    based_on = "source of the op list" # required: where the lists below come from
    activations = ["relu", "relu6"]    # the only activations the target runs (subset of these two)
    int8 = true                        # every tensor int8: no float compute, int8 model I/O
    static_shapes = true               # no dynamic dimension on any model input/output
    max_rank = 4                       # highest tensor rank the target handles
    innermost_dims = 3                 # optional: only this many innermost dimensions of any tensor
                                       #   may exceed 1 (the rest, batch included, must be 1)
    [onnx]
    ops = ["Conv", "Add", ...]         # non-activation ops the target runs
    output_only = ["Softmax"]          # allowed only where they produce a model output
    [onnx.limits.Conv]                 # per-op limits: max_kernel, max_stride, max_dilation,
    max_kernel = 11                    #   max_dilated_kernel ((k-1)*d+1), max_depth_multiplier
    hardware_activations = ["Sigmoid"] # activations the hardware runs but pea-deploy's ReLU policy
                                       #   rejects: named in messages, never allowed
    [tflite]                           # the same keys, with TFLite builtin names
    [pte]                              # the same keys, with XNNPACK node types (XNNConv2d, ...) for
                                       #   ExecuTorch programs; a profile without it runs no .pte
    [export]                           # how `pea-export` builds artefacts for this target (optional;
                                       #   read and validated by pea_deploy.export.target, not here)
    opset = 17                         # ONNX opset of the exported models
    activation_dtype = "int8"          # int8 or uint8 activations in the quantized ONNX model
    vela_accelerator = "ethos-u55-128" # compile the int8 TFLite with Arm Vela for this NPU config
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, unknown_name
from ..package_data import packaged_files
from .ops import activation_kinds, op_kind

_TOP = {"name", "description", "based_on", "activations", "int8", "static_shapes", "max_rank", "onnx", "tflite",
        "pte", "export", "extends", "innermost_dims"}
_FORMAT_KEYS = {"ops", "output_only", "limits", "hardware_activations"}
LIMIT_KEYS = ("max_kernel", "max_stride", "max_dilation", "max_dilated_kernel", "max_depth_multiplier",
              "square_stride", "max_scale", "power_of_two_scale", "same_quantization", "no_fused_activation",
              "one_dimensional_input", "one_dimensional_output", "max_elements", "spatial_axes_only")


@dataclass(frozen=True)
class FormatRules:
    ops: frozenset[str] = frozenset()
    output_only: frozenset[str] = frozenset()
    limits: dict = field(default_factory=dict)  # op -> {limit: int}
    # Activations the hardware runs that the ReLU policy rejects (so messages tell policy from hardware).
    hardware_activations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    based_on: str
    activations: frozenset[str]
    int8: bool
    static_shapes: bool
    max_rank: int
    onnx: FormatRules
    tflite: FormatRules
    source: str = ""
    export: dict = field(default_factory=dict)  # the [export] table as written: pea-export's business
    innermost_dims: int | None = None  # only this many innermost dims of a tensor may exceed 1
    pte: FormatRules = FormatRules()  # ExecuTorch programs (XNNPACK node types)

    def rules_for(self, fmt: str) -> FormatRules:
        return {"onnx": self.onnx, "pte": self.pte}.get(fmt, self.tflite)

    def to_dict(self) -> dict:
        def fr(r: FormatRules) -> dict:
            return {"ops": sorted(r.ops), "output_only": sorted(r.output_only), "limits": r.limits,
                    "hardware_activations": sorted(r.hardware_activations)}

        return {"name": self.name, "description": self.description, "based_on": self.based_on,
                "activations": sorted(self.activations), "int8": self.int8,
                "static_shapes": self.static_shapes, "max_rank": self.max_rank,
                "onnx": fr(self.onnx), "tflite": fr(self.tflite), "pte": fr(self.pte), "source": self.source,
                "export": dict(self.export), "innermost_dims": self.innermost_dims}


def _err(where: str, msg: str) -> ConfigError:
    return ConfigError(f"invalid profile {where}: {msg}")


def _format_rules(raw, where: str, fmt: str) -> FormatRules:
    if not isinstance(raw, dict):
        raise _err(where, f"[{fmt}] must be a table")
    for key in raw:
        if key not in _FORMAT_KEYS:
            raise _err(where, f"unknown key '{fmt}.{key}'; valid: {', '.join(sorted(_FORMAT_KEYS))}")
    ops = raw.get("ops", [])
    out_only = raw.get("output_only", [])
    for key, value in (("ops", ops), ("output_only", out_only)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _err(where, f"'{fmt}.{key}' must be a list of op names")
        banned = sorted(op for op in value if op_kind(fmt, op) in activation_kinds())
        if banned:
            raise _err(where, f"'{fmt}.{key}' lists {', '.join(banned)}: only ReLU/ReLU6 may be allowed "
                              f"(use the 'activations' key)")
    limits = raw.get("limits", {})
    if not isinstance(limits, dict):
        raise _err(where, f"'{fmt}.limits' must be a table of op tables")
    for op, table in limits.items():
        if not isinstance(table, dict):
            raise _err(where, f"'{fmt}.limits.{op}' must be a table")
        for k, v in table.items():
            if k not in LIMIT_KEYS:
                raise _err(where, f"unknown key '{fmt}.limits.{op}.{k}'; valid: {', '.join(LIMIT_KEYS)}")
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise _err(where, f"'{fmt}.limits.{op}.{k}' must be a positive integer")
    hardware = raw.get("hardware_activations", [])
    if not isinstance(hardware, list) or not all(isinstance(v, str) for v in hardware):
        raise _err(where, f"'{fmt}.hardware_activations' must be a list of op names")
    return FormatRules(frozenset(ops), frozenset(out_only), {k: dict(v) for k, v in limits.items()},
                       frozenset(hardware))


def _table(raw, where: str) -> dict:
    if not isinstance(raw, dict):
        raise _err(where, "[export] must be a table")
    return dict(raw)


def parse_profile(raw: dict, where: str) -> Profile:
    for key in raw:
        if key not in _TOP:
            raise _err(where, f"unknown key '{key}'; valid: {', '.join(sorted(_TOP))}")
    for key in ("name", "description", "based_on"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _err(where, f"'{key}' is required and must be a non-empty string")
    acts = raw.get("activations", ["relu"])
    if not isinstance(acts, list) or not acts or not set(acts) <= {"relu", "relu6"}:
        raise _err(where, f"'activations' must be a non-empty list of relu and/or relu6, got {acts!r}")
    for key in ("int8", "static_shapes"):
        if not isinstance(raw.get(key, False), bool):
            raise _err(where, f"'{key}' must be true or false")
    rank = raw.get("max_rank", 4)
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise _err(where, "'max_rank' must be a positive integer")
    inner = raw.get("innermost_dims")
    if inner is not None and (not isinstance(inner, int) or isinstance(inner, bool) or inner < 1):
        raise _err(where, "'innermost_dims' must be a positive integer")
    return Profile(raw["name"], raw["description"], raw["based_on"], frozenset(acts),
                   raw.get("int8", False), raw.get("static_shapes", False), rank,
                   _format_rules(raw.get("onnx", {}), where, "onnx"),
                   _format_rules(raw.get("tflite", {}), where, "tflite"), where, _table(raw.get("export", {}), where),
                   inner, _format_rules(raw.get("pte", {}), where, "pte"))


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"profile file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read profile {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise _err(str(path), f"not valid TOML: {e}") from None


def _merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _resolve_extends(raw: dict, where: str, seen: tuple[str, ...] = ()) -> dict:
    """`raw` on top of the built-in profile it extends (and that one's base, and so on)."""
    base_name = raw.get("extends")
    if base_name is None:
        return raw
    profiles = builtin_profiles()
    if not isinstance(base_name, str) or base_name not in profiles:
        raise _err(where, f"'extends' must name a built-in profile ({', '.join(sorted(profiles))}), got {base_name!r}")
    if base_name in seen:
        raise _err(where, f"'extends' loops: {' -> '.join(seen + (base_name,))}")
    base = _resolve_extends(_read_toml(profiles[base_name]), str(profiles[base_name]), seen + (base_name,))
    return _merged({k: v for k, v in base.items() if k != "extends"}, {k: v for k, v in raw.items() if k != "extends"})


def load_profile_file(path: str | Path) -> Profile:
    path = Path(path)
    return parse_profile(_resolve_extends(_read_toml(path), str(path)), str(path))


def builtin_profiles() -> dict[str, Path]:
    return packaged_files("pea_deploy.verify.profiles", ".toml")


def load_profile(target: str) -> Profile:
    """A built-in profile by name (see `pea-verify-ops --list-targets`)."""
    profiles = builtin_profiles()
    if target not in profiles:
        raise unknown_name("target", target, profiles)
    return load_profile_file(profiles[target])
