"""Compile the int8 TFLite with Arm's Vela for an Ethos-U target and read back what it decided:
which operators run on the NPU, which fall back to the CPU, and Vela's performance estimate.

Vela runs in a child process: it prints freely and may exit the interpreter. `ethos-u-vela` is an
optional extra (`pea-deploy[vela]`).
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ExportStepError
from ..verify.vela_placement import VELA_MAIN, vela_version
from .steps import require
from .target import VELA_CONFIG_FILE, check_vela_config

_OPS = re.compile(r"^\s*(CPU|NPU) operators = (\d+)")
_PLACED = re.compile(r"^\s*(CPU|NPU): (\S+) = (.*?)(?: \(outputs.*)?$")


@dataclass
class VelaResult:
    accelerator: str
    version: str
    npu_operators: int
    cpu_operators: int
    cpu_fallback: list[str] = field(default_factory=list)  # "OpType = tensor name" per CPU operator
    system_config: str = "Internal-Default"   # Vela's names (Arm/vela.ini) the estimate assumed
    memory_mode: str = "Internal-Default"
    inference_time_ms: float | None = None
    inferences_per_second: float | None = None
    npu_cycles: int | None = None
    total_cycles: int | None = None
    sram_kib: float | None = None
    off_chip_flash_kib: float | None = None
    macs: int | None = None

    @property
    def all_on_npu(self) -> bool:
        return self.cpu_operators == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "all_on_npu": self.all_on_npu}


def compile_for_ethos_u(tflite: str | Path, accelerator: str, timeout_s: float = 600, *,
                        system_config: str | None = None, memory_mode: str | None = None) -> VelaResult:
    """Run `vela --accelerator-config ACCELERATOR` on `tflite` in a scratch directory; with a system
    config or memory mode (names from Vela's Arm/vela.ini), the performance estimate uses them."""
    require("ethosu", f"compiling for {accelerator} with Vela", "vela")
    check_vela_config(system_config, memory_mode, ("Vela system config", "Vela memory mode"))
    with tempfile.TemporaryDirectory(prefix="pea-vela-") as out:
        cmd = [sys.executable, "-c", VELA_MAIN, str(tflite), "--accelerator-config", accelerator,
               "--output-dir", out, "--show-cpu-operations"]
        if system_config or memory_mode:
            cmd += ["--config", VELA_CONFIG_FILE]
            cmd += ["--system-config", system_config] if system_config else []
            cmd += ["--memory-mode", memory_mode] if memory_mode else []
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ExportStepError(f"Vela compilation for {accelerator} took over {timeout_s:.0f} s") from None
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
            raise ExportStepError(f"Vela compilation for {accelerator} failed (exit {done.returncode}): "
                                  f"{lines[-1] if lines else 'no output'}")
        counts, fallback = {}, []
        for line in done.stdout.splitlines():
            if m := _OPS.match(line):
                counts[m.group(1)] = int(m.group(2))
            elif (m := _PLACED.match(line)) and m.group(1) == "CPU":
                fallback.append(f"{m.group(2)} = {m.group(3)}")
        if "NPU" not in counts or "CPU" not in counts:
            raise ExportStepError("Vela compilation gave no operator summary (unexpected Vela output)")
        result = VelaResult(accelerator, vela_version(), counts["NPU"], counts["CPU"], fallback,
                            system_config=system_config or "Internal-Default",
                            memory_mode=memory_mode or "Internal-Default")
        summaries = list(Path(out).glob("*_summary_*.csv"))
        if summaries:
            with open(summaries[0], newline="") as f:
                row = next(csv.DictReader(f), {})
            num = lambda k, cast=float: cast(float(row[k])) if row.get(k) not in (None, "") else None  # noqa: E731
            t = num("inference_time")
            result.inference_time_ms = round(t * 1e3, 4) if t is not None else None
            result.inferences_per_second = num("inferences_per_second")
            result.npu_cycles, result.total_cycles = num("cycles_npu", int), num("cycles_total", int)
            result.sram_kib, result.off_chip_flash_kib = num("sram_memory_used"), num("off_chip_flash_memory_used")
            result.macs = num("nn_macs", int)
        return result
