"""Ask Arm's Vela where each operator of a TFLite model runs: the Ethos-U verdict from the vendor's
compiler itself, not from our reading of its documentation.

Vela's checks include graph rewrites (a stride-4 VALID convolution or a 14x14 average pool is split
into ops the NPU runs), so no list of limits reproduces them exactly; when Vela is installed
pea-verify-ops asks it, and the profile's limits are the fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import PeaError

# Vela as a child process: `python -c VELA_MAIN ARGS...` (pea-export and the op check both run it so)
VELA_MAIN = "import sys; from ethosu.vela.vela import main; sys.exit(main(sys.argv[1:]))"
_CPU_OPS = re.compile(r"^\s*CPU operators = (\d+)", re.M)
_CPU_OP = re.compile(r"^\s*CPU: (\S+) = (.*?)(?: \(outputs.*)?$", re.M)
_WARNING = re.compile(r"^Warning \(supported operators\) operator: (\S+), ofm: '(.*)'\nReason: (.*)$", re.M)


class VelaUnavailable(PeaError):
    """Vela was asked for and is missing, or could not compile the model."""


def vela_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ethosu") is not None


def vela_version() -> str:
    from importlib.metadata import version

    return version("ethos-u-vela")


def _run(tflite: Path, accelerator: str, out: str, in_process: bool) -> str:
    args = [str(tflite), "--accelerator-config", accelerator, "--output-dir", out, "--show-cpu-operations"]
    if not in_process:
        try:
            done = subprocess.run([sys.executable, "-c", VELA_MAIN, *args], capture_output=True, text=True,
                                  timeout=600)
        except subprocess.TimeoutExpired:
            raise VelaUnavailable(f"Vela took over 600 s on {tflite}") from None
        return done.stdout + done.stderr
    from ethosu.vela.vela import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            main(args)
        except SystemExit:
            pass
        except Exception as e:  # noqa: BLE001 - Vela's U85 back end raises on graphs it cannot read
            print(f"Vela failed: {type(e).__name__}: {' '.join(str(e).split())}")
    return buf.getvalue()


# (sha256 of the model, accelerator) -> placement: a model checked twice (pea-export, then a
# differential check) is compiled once per process.
_CACHE: dict[tuple[str, str], dict[str, str]] = {}


def cpu_placements(tflite: str | Path, accelerator: str, in_process: bool = False) -> dict[str, str]:
    """{output tensor name: Vela's reason} for every operator Vela leaves to the CPU.

    A child process by default (Vela prints freely and may exit the interpreter); in_process for
    many tiny models, where starting Python would cost more than compiling."""
    if not vela_available():
        raise VelaUnavailable("Vela is not installed (pip install 'pea-deploy[vela]')")
    key = (hashlib.sha256(Path(tflite).read_bytes()).hexdigest(), accelerator)
    if key not in _CACHE:
        _CACHE[key] = _compile(Path(tflite), accelerator, in_process)
    return dict(_CACHE[key])


def _compile(tflite: Path, accelerator: str, in_process: bool) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="pea-vela-") as out:
        text = _run(Path(tflite), accelerator, out, in_process)
    if _CPU_OPS.search(text) is None:
        last = [ln for ln in text.splitlines() if ln.strip()][-1:] or ["no output"]
        raise VelaUnavailable(f"Vela could not compile {tflite} for {accelerator}: {last[0]}")
    reasons = {m.group(2): m.group(3).strip() for m in _WARNING.finditer(text)}
    return {m.group(2).strip(): reasons.get(m.group(2).strip(), "placed on the CPU by Vela's graph rewrites")
            for m in _CPU_OP.finditer(text)}


def on_npu(tflite: str | Path, accelerator: str, in_process: bool = False) -> tuple[bool, str]:
    """(every operator on the NPU, the first CPU reason). A model Vela cannot compile at all (its U85
    back end refuses a float HARD_SWISH outright) runs nowhere on the NPU."""
    if not vela_available():
        raise VelaUnavailable("Vela is not installed (pip install 'pea-deploy[vela]')")
    try:
        cpu = cpu_placements(tflite, accelerator, in_process)
    except VelaUnavailable as e:
        return False, str(e)
    return not cpu, next(iter(cpu.values()), "")
