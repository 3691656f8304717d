"""Which int8 kernels this CPU's onnxruntime runs, and whether they can be trusted as the artefact's.

onnxruntime's fused x86 int8 kernels (MLAS) multiply uint8 activations by int8 weights with
`vpmaddubsw` on CPUs without VNNI: it adds two u8*s8 products into an int16 that saturates at
32767, so the same int8 ONNX file computes other numbers on an AVX2-only (or AVX-512 without VNNI)
build machine than on a VNNI one or on an NPU. pea-export therefore gates on the QDQ reference
semantics and reports the fused result of this CPU beside it, named by this ISA.

The features come from CPUID, never /proc/cpuinfo (an emulator such as qemu -cpu Haswell passes
the host's through): as numpy reads them, and AVX-VNNI, which numpy does not report, from CPUID
leaf 7.1 by a 30-byte function (/proc/cpuinfo only where executable memory is refused).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Int8Isa:
    name: str          # "AVX-512 VNNI", "AVX-VNNI", "AVX-512 (no VNNI)", "AVX2 (no VNNI)", ...
    saturates: bool    # onnxruntime's fused u8s8 kernels may saturate here (x86 without VNNI)

    def __str__(self) -> str:
        return self.name


def _numpy_features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return dict(__cpu_features__)


# x86-64 System V: cpuid(leaf=edi, subleaf=esi, out=rdx) writes eax, ebx, ecx, edx to out[0..3]
_CPUID_CODE = bytes.fromhex("53" "89f8" "89f1" "4989d0" "0fa2" "418900" "41895804" "41894808" "4189500c" "5b" "c3")


def _cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int] | None:
    """(eax, ebx, ecx, edx) of CPUID on x86-64 Linux/macOS; None where it cannot be run."""
    import ctypes
    import mmap
    import sys

    if sys.platform == "win32" or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError, AttributeError):  # W^X policies refuse executable memory
        return None
    page.write(_CPUID_CODE)
    out = (ctypes.c_uint32 * 4)()
    code = ctypes.c_char.from_buffer(page)
    ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)(ctypes.addressof(code))(
        leaf, subleaf, ctypes.addressof(out))
    del code  # the page cannot close while a ctypes object exports it
    page.close()
    return tuple(out)


def _avx_vnni(proc_flags: set[str] | None) -> bool:
    if proc_flags is not None:
        return "avx_vnni" in proc_flags
    regs = _cpuid(0, 0)
    if regs is None:
        return "avx_vnni" in _proc_flags()
    return regs[0] >= 7 and bool(_cpuid(7, 1)[0] & (1 << 4))   # CPUID.(EAX=7,ECX=1):EAX[4]


def _proc_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def int8_isa(features: dict[str, bool] | None = None, proc_flags: set[str] | None = None) -> Int8Isa:
    """The ISA onnxruntime's x86 int8 kernels dispatch on for this CPU (`features`, `proc_flags`:
    numpy-style CPU features and /proc/cpuinfo flags to classify instead of this CPU's)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return Int8Isa(f"{machine or 'unknown'} (not x86)", False)
    f = _numpy_features() if features is None else features
    if f.get("AVX512VNNI") and f.get("AVX512BW"):
        return Int8Isa("AVX-512 VNNI", False)
    if f.get("AVX2") and _avx_vnni(proc_flags):
        return Int8Isa("AVX-VNNI", False)
    if f.get("AVX512BW"):
        return Int8Isa("AVX-512 (no VNNI)", True)
    if f.get("AVX2"):
        return Int8Isa("AVX2 (no VNNI)", True)
    return Int8Isa("SSE4 (no AVX2)", True)
