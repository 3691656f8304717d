"""How pea-export builds artefacts for a target: the profile's [export] table, validated here (the
op checker reads profiles but knows nothing of compilers).

    [export]
    opset = 17                          # ONNX opset of the exported models (>= 13)
    activation_dtype = "int8"           # int8 or uint8 activations in the quantized ONNX model
    vela_accelerator = "ethos-u55-128"  # compile the int8 TFLite with Arm Vela for this config
    vela_system_config = "Ethos_U55_High_End_Embedded"  # the performance estimate's system and memory
    vela_memory_mode = "Shared_Sram"    #   mode, from Vela's Arm/vela.ini (default: Vela's internal one)
    parity_runtimes = ["tflite-micro"]  # device runtimes that also run the int8 TFLite in parity
                                        #   (tflite-micro: TFLite Micro, with its tensor arena size)
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass

from ..errors import ConfigError, unknown_name
from ..verify.profile import Profile
from .onnx_quant import ACTIVATION_DTYPES

MIN_OPSET = 13  # per-channel QuantizeLinear needs 13
PARITY_RUNTIMES = ("tflite-micro",)


@dataclass(frozen=True)
class ExportSettings:
    opset: int = 17
    activation_dtype: str = "int8"
    vela_accelerator: str | None = None
    vela_system_config: str | None = None
    vela_memory_mode: str | None = None
    parity_runtimes: tuple[str, ...] = ()

    @classmethod
    def from_profile(cls, profile: Profile) -> "ExportSettings":
        """The profile's [export] table, every key and value checked; a Vela accelerator is checked
        against the installed Vela's own list of configurations."""
        raw, where = profile.export, f"invalid profile {profile.source or profile.name}"
        valid = {f for f in asdict(cls())}
        for key in raw:
            if key not in valid:
                raise ConfigError(f"{where}: unknown key 'export.{key}'; valid: {', '.join(sorted(valid))}")
        opset = raw.get("opset", cls.opset)
        if not isinstance(opset, int) or isinstance(opset, bool) or opset < MIN_OPSET:
            raise ConfigError(f"{where}: 'export.opset' must be an integer >= {MIN_OPSET}, got {opset!r}")
        dtype = raw.get("activation_dtype", cls.activation_dtype)
        if dtype not in ACTIVATION_DTYPES:
            raise ConfigError(f"{where}: 'export.activation_dtype' must be int8 or uint8, got {dtype!r}")
        vela = raw.get("vela_accelerator")
        if vela is not None:
            known = vela_accelerators()
            if not isinstance(vela, str) or (known and vela not in known):
                raise ConfigError(f"{where}: {unknown_name('export.vela_accelerator', vela, known or ('ethos-u55-128',))}")
        system, memory = raw.get("vela_system_config"), raw.get("vela_memory_mode")
        check_vela_config(system, memory, ("export.vela_system_config", "export.vela_memory_mode"), where)
        runtimes = raw.get("parity_runtimes", [])
        if not isinstance(runtimes, list):
            raise ConfigError(f"{where}: 'export.parity_runtimes' must be a list, got {runtimes!r}")
        for name in runtimes:
            if name not in PARITY_RUNTIMES:
                raise ConfigError(f"{where}: {unknown_name('export.parity_runtimes entry', name, PARITY_RUNTIMES)}")
        return cls(opset, dtype, vela, system, memory, tuple(dict.fromkeys(runtimes)))


def vela_accelerators() -> tuple[str, ...]:
    """The accelerator configurations the installed Vela knows (empty when Vela is not installed;
    pea-export then asks for the extra before it compiles)."""
    if importlib.util.find_spec("ethosu") is None:
        return ()
    from ethosu.vela.architecture_features import Accelerator

    return tuple(a.value for a in Accelerator)


VELA_CONFIG_FILE = "Arm/vela.ini"  # the system configs and memory modes Arm ships inside Vela


def vela_configs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(system configs, memory modes) named in the installed Vela's Arm/vela.ini (empty without Vela)."""
    spec = importlib.util.find_spec("ethosu")
    if spec is None or not spec.submodule_search_locations:
        return (), ()
    import configparser
    from pathlib import Path

    ini = configparser.ConfigParser()
    ini.read(Path(list(spec.submodule_search_locations)[0]) / "config_files" / VELA_CONFIG_FILE)
    pick = lambda prefix: tuple(s.split(".", 1)[1] for s in ini.sections() if s.startswith(prefix + "."))  # noqa: E731
    return pick("System_Config"), pick("Memory_Mode")


def check_vela_config(system: str | None, memory: str | None,
                      names: tuple[str, str] = ("--vela-system-config", "--vela-memory-mode"), where: str = "") -> None:
    """Refuse a system config or memory mode Vela's Arm/vela.ini does not define (when Vela is
    installed; without it pea-export asks for the extra before compiling)."""
    systems, memories = vela_configs()
    for name, value, known in ((names[0], system, systems), (names[1], memory, memories)):
        if value is not None and (not isinstance(value, str) or (known and value not in known)):
            error = unknown_name(name, value, known or (str(value),))
            raise ConfigError(f"{where}: {error}") if where else error
