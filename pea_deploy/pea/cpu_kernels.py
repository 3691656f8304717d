"""The fused CPU passes of the ensembles (kernels/), compiled once per machine and cached.

Built on first use with the machine's C++ compiler (`$CXX`, else c++/g++/clang++) against the
installed torch, with -march=native: the cache key holds the CPU's feature flags, so a cache shared
by different machines never runs code built for another CPU. Where it cannot be built (no
compiler, no headers) the ensembles run their ATen form, which computes the same functions; one
warning says why. `PEA_DEPLOY_CPU_KERNELS=0` turns the kernel off; `PEA_DEPLOY_CACHE` moves the
cache (default ~/.cache/pea-deploy).

    python -m pea_deploy.pea.build_kernel    # build now; print where it is or why it is not
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..atomic import atomic_path

SOURCE_DIR = Path(__file__).with_name("kernels")
SOURCE = SOURCE_DIR / "ensembles.cpp"
_FLAGS = ["-O3", "-fopenmp", "-shared", "-fPIC", "-std=c++20", "-w"]
# Target codes of the kernel (kernels/pointwise.h: enum Target), keyed by the target's function.
_TARGETS = {torch.relu: 0, nn.functional.relu6: 1}
# Activation codes (kernels/pointwise.h: enum Act) of the activations the kernel computes itself, with
# ATen's formulas; any other (0) the caller computes first.
ACT_CODES = {"gelu": 1, "silu": 2, "mish": 3, "elu": 4}

_lock = threading.Lock()
_state: dict = {}  # "ops" -> the op namespace, or "reason" -> why there is none; "where" -> its file
_off = threading.local()


def cache_dir() -> Path:
    root = os.environ.get("PEA_DEPLOY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "pea-deploy")
    return Path(root) / "kernels"


def _cpu_flags() -> str:
    """The CPU's feature flags (what -march=native compiles for)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    return platform.processor() or platform.machine()


def compiler() -> str | None:
    found = (shutil.which(name) for name in (os.environ.get("CXX"), "c++", "g++", "clang++") if name)
    return next((path for path in found if path), None)


def library_path(cxx: str, march: str = "native") -> Path:
    """Where the kernel built from these sources for this torch, compiler, flags and CPU lives."""
    key = hashlib.sha256()
    sources = [p.read_bytes() for p in sorted(SOURCE_DIR.iterdir()) if p.suffix in (".cpp", ".h")]
    for part in (*sources, torch.__version__.encode(), cxx.encode(), " ".join(_FLAGS).encode(), march.encode(),
                 _cpu_flags().encode(), sys.platform.encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir() / f"pea_cpu_kernels-{key.hexdigest()[:16]}.so"


def build_library(cxx: str, march: str = "native") -> Path:
    """The built kernel library (compiled now unless cached); RuntimeError with the compiler's first
    error line. `march` other than native builds for another instruction set (the tests' scalar and
    AVX2 builds)."""
    lib = library_path(cxx, march)
    if lib.exists():
        return lib
    torch_dir = Path(torch.__file__).parent
    include = torch_dir / "include"
    # Built into a temporary name and renamed: processes building at once (DDP ranks) each write
    # their own file, and a reader never loads half of one.
    with atomic_path(lib) as tmp:
        command = [cxx, *_FLAGS, f"-march={march}", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
                   "-I", str(include), "-I", str(include / "torch" / "csrc" / "api" / "include"), str(SOURCE),
                   "-o", str(tmp), "-L", str(torch_dir / "lib"), "-lc10", "-ltorch_cpu"]
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as e:
            raise RuntimeError(f"{Path(cxx).name} did not run: {e}") from None
        if done.returncode != 0:
            lines = done.stderr.splitlines()
            first = next((ln for ln in lines if "error" in ln), lines[0] if lines else f"exit {done.returncode}")
            raise RuntimeError(f"{Path(cxx).name} failed: {first.strip()[:200]}")
    return lib


def _load() -> object:
    if os.environ.get("PEA_DEPLOY_CPU_KERNELS", "1").strip().lower() in ("0", "off", "false", "no"):
        raise RuntimeError("turned off by PEA_DEPLOY_CPU_KERNELS")
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    lib = build_library(cxx)
    torch.ops.load_library(str(lib))
    _state["where"] = str(lib)
    return torch.ops.pea_deploy


def ops():
    """The kernel's op namespace (built on the first call), or None where it cannot be had."""
    if "ops" not in _state and "reason" not in _state:
        with _lock:
            if "ops" not in _state and "reason" not in _state:
                try:
                    _state["ops"] = _load()
                except (RuntimeError, OSError) as e:
                    _state["reason"] = str(e)
                    if not str(e).startswith("turned off"):
                        warnings.warn(f"pea-deploy: fused CPU ensemble kernel unavailable ({e}); the ensembles "
                                      f"run their ATen form (same functions, slower)", RuntimeWarning, stacklevel=3)
    return _state.get("ops")


def status() -> str:
    """One line: where the loaded kernel is, or why there is none."""
    kernels = ops()
    if kernels is None:
        return f"unavailable: {_state['reason']}"
    return f"loaded from {_state['where']} ({kernels.capability()} vectors)"


@contextlib.contextmanager
def disabled():
    """Within the block (this thread), the ensembles run their ATen form: for comparisons and
    benchmarks (benchmarks/train_step.py times both in one run)."""
    before = getattr(_off, "on", False)
    _off.on = True
    try:
        yield
    finally:
        _off.on = before


def target_code(fn) -> int | None:
    return _TARGETS.get(fn)


def act_code(kernel: str | None) -> int:
    """The kernel's code for an activation (Activation.kernel); 0: the caller computes Act."""
    return ACT_CODES.get(kernel, 0)


def serves(x: Tensor, target_fn) -> object:
    """The op namespace when the kernel can run an ensemble on x, else None: a float32/float64 CPU
    tensor, a ReLU or ReLU6 target, and eager execution (torch.compile and tracers see ATen ops)."""
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or target_fn not in _TARGETS:
        return None
    if getattr(_off, "on", False) or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None
    return ops()
