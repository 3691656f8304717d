"""Target accelerator profiles: TOML data files, validated on load, built-in or the user's own.

Schema (every key checked; unknown keys are errors):

    name = "my-npu"                    # required
    description = "one line"           # required
    based_on = "source of the op list" # required: where the lists below come from
    activations = ["relu", "relu6"]    # the only activations the target runs (subset of these two)
    int8 = true                        # every tensor int8: no float compute, int8 model I/O
    static_shapes = true               # no dynamic dimension on any model input/output
    max_rank = 4                       # highest tensor rank the target handles
    [onnx]
    ops = ["Conv", "Add", ...]         # non-activation ops the target runs
    output_only = ["Softmax"]          # allowed only where they produce a model output
    [onnx.limits.Conv]                 # per-op limits: max_kernel, max_stride, max_dilation,
    max_kernel = 11                    #   max_dilated_kernel ((k-1)*d+1), max_depth_multiplier
    hardware_activations = ["Sigmoid"] # activations the hardware runs but pea-deploy's ReLU policy
                                       #   rejects: named in messages, never allowed
    [tflite]                           # the same keys, with TFLite builtin names
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
        "export"}
_FORMAT_KEYS = {"ops", "output_only", "limits", "hardware_activations"}
LIMIT_KEYS = ("max_kernel", "max_stride", "max_dilation", "max_dilated_kernel", "max_depth_multiplier",
              "square_stride", "max_scale", "power_of_two_scale", "same_quantization")


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

    def rules_for(self, fmt: str) -> FormatRules:
        return self.onnx if fmt == "onnx" else self.tflite

    def to_dict(self) -> dict:
        def fr(r: FormatRules) -> dict:
            return {"ops": sorted(r.ops), "output_only": sorted(r.output_only), "limits": r.limits,
                    "hardware_activations": sorted(r.hardware_activations)}

        return {"name": self.name, "description": self.description, "based_on": self.based_on,
                "activations": sorted(self.activations), "int8": self.int8,
                "static_shapes": self.static_shapes, "max_rank": self.max_rank,
                "onnx": fr(self.onnx), "tflite": fr(self.tflite), "source": self.source,
                "export": dict(self.export)}


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
    return Profile(raw["name"], raw["description"], raw["based_on"], frozenset(acts),
                   raw.get("int8", False), raw.get("static_shapes", False), rank,
                   _format_rules(raw.get("onnx", {}), where, "onnx"),
                   _format_rules(raw.get("tflite", {}), where, "tflite"), where, _table(raw.get("export", {}), where))


def load_profile_file(path: str | Path) -> Profile:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"profile file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read profile {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise _err(str(path), f"not valid TOML: {e}") from None
    return parse_profile(raw, str(path))


def builtin_profiles() -> dict[str, Path]:
    return packaged_files("pea_deploy.verify.profiles", ".toml")


def load_profile(target: str) -> Profile:
    """A built-in profile by name (see `pea-verify-ops --list-targets`)."""
    profiles = builtin_profiles()
    if target not in profiles:
        raise unknown_name("target", target, profiles)
    return load_profile_file(profiles[target])
